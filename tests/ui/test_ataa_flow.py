"""Ata'a end to end in Chromium on a 360 px phone, in Arabic and in English, on the
three federated nodes of ``watan demo`` (tools/demo.py; NGO A = Al-Amal, B = Al-Rahma):

1. import: at A a case worker imports a survey file of five households (one row with
   a short national ID), through mapping, check, start and the progress page, and
   reads the report's counts; at B another case worker imports two, one of them the
   same family as at A (the same national ID), the other less needy than it;
2. score: A's copy of the shared household shows its score, and the breakdown adds up
   to it; both copies' pseudonyms become ready (the oracles are the demo's nodes);
3. queue: B's queue for food in that district ranks the shared household first, with
   no aid received; A's coordinator sees it third in A's queue, plans a food
   distribution for the district, picks the top two from the queue and adds the
   shared household by hand with a reason;
4. deliver: A's case worker marks it delivered on the phone (one large button); the
   delivery is shared as a signed allocation;
5. re-rank: within a deadline B's queue shows it "received food … from Al-Amal" and
   it drops below the household it ranked above before, its priority below its
   score; B's own food distribution for the district then warns of duplicate
   assistance and blocks that delivery.

Every page visited passes axe-core (no serious or critical violation), nothing
scrolls sideways at 360 px, and screenshots go to ``artifacts/screenshots/flow-*``.

Each language has its own households in a district the demo seeds no one in (Najaf's
Kufa for Arabic, named in Arabic in the file; Karbala's Kerbela for English, by
P-code), so the two runs and the demo's synthetic households never meet in a queue.
One demo serves the module and is stopped with SIGINT at its end (exit status 0).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect

from .conftest import (
    BROWSER_LOCALE,
    assert_accessible,
    assert_no_horizontal_scroll,
    screenshot,
    submit,
)
from .demo_fixture import Demo, start_demo, stop_demo

WIDTH, HEIGHT = 360, 740
#: Indexes of the demo's NGOs (its banner's order): A delivers, B's queue re-ranks.
A, B = 0, 1
#: How long a household's pseudonym may take to be ready (two oracles of three answer a
#: batch; the demo's nodes are its oracles) and a delivery at A to re-rank B's queue
#: (A appends the allocation, notifies its peers, B pulls it).
PSEUDONYM_DEADLINE_S = 30.0
RERANK_DEADLINE_S = 30.0
#: Between two reloads of a page polled for a state the node reaches by itself.
POLL_MS = 300
#: A's points per food allocation for a food queue (node.ataa.QueueSettings default):
#: the shared household's score is less than this, so it drops to priority 0.
SAME_CATEGORY_PENALTY = 400

ARABIC_DIGITS = str.maketrans("٠١٢٣٤٥٦٧٨٩", "0123456789", "٬,")


@dataclass(frozen=True, slots=True)
class Family:
    """One household as a survey row has it. Their scores under the default model
    (top 470, second 406, shared 224, other 188, last 50) are read from the pages, not
    assumed: the test asserts only the order it needs and says which one broke."""

    names: tuple[str, str, str, str]
    mother: str
    national_id: str
    shelter: str
    displacement: str
    income: int
    members: int
    under_5: int
    elderly: int


@dataclass(frozen=True, slots=True)
class Flow:
    """One language's run: its survey files and area."""

    lang: str
    header: str
    #: how the file names the area (cells) and its P-codes (forms, queue filters)
    place: tuple[str, str]
    governorate: str
    district: str
    #: A's file: the two neediest, the shared one, the least needy, a bad national ID
    top: Family
    second: Family
    shared: Family
    last: Family
    bad: Family
    #: B's other household: less needy than the shared one, more than zero
    other: Family

    def csv(self, families: tuple[Family, ...]) -> bytes:
        lines = [self.header]
        for f in families:
            cells = [*f.names, f.mother, f.national_id, *self.place, f.shelter, f.displacement]
            cells += [str(f.income), str(f.members), str(f.under_5), str(f.elderly)]
            lines.append(",".join(cells))
        return ("\n".join(lines) + "\n").encode()

    @property
    def file_a(self) -> bytes:
        return self.csv((self.top, self.second, self.shared, self.last, self.bad))

    @property
    def file_b(self) -> bytes:
        return self.csv((self.shared, self.other))


FLOWS = {
    "ar": Flow(
        lang="ar",
        header="الاسم الأول,اسم الأب,اسم الجد,اللقب,اسم الأم,رقم البطاقة الوطنية,المحافظة,"
        "القضاء,نوع السكن,حالة النزوح,الدخل الشهري,عدد أفراد الأسرة,أطفال دون 5,كبار السن",
        place=("النجف", "الكوفة"),
        governorate="IQG04",
        district="IQG04Q01",
        top=Family(("زينب", "كاظم", "جعفر", "الياسري"), "سعاد", "198803000011",
                   "خيمة", "نازح في مخيم", 0, 7, 3, 1),
        second=Family(("عباس", "ناصر", "رعد", "الحلفي"), "ليلى", "198803000012",
                      "مبنى غير مكتمل", "عائد", 100_000, 6, 2, 0),
        shared=Family(("حسين", "علي", "مهدي", "الفتلاوي"), "هدى", "198803000013",
                      "مستأجر", "", 250_000, 4, 1, 0),
        last=Family(("مريم", "صادق", "هاشم", "الغراوي"), "نور", "198803000014",
                    "ملك", "", 600_000, 3, 0, 0),
        bad=Family(("سعد", "عادل", "فاضل", "اللامي"), "نجلاء", "12345",
                   "خيمة", "", 0, 5, 1, 0),
        other=Family(("كريم", "جاسم", "عمر", "الأسدي"), "منى", "198803000015",
                     "ملك", "", 300_000, 5, 1, 0),
    ),
    "en": Flow(
        lang="en",
        header="First name,Father name,Grandfather name,Family name,Mother name,National ID,"
        "Governorate,District,Shelter type,Displacement status,Monthly income,Household size,"
        "Children under 5,Elderly",
        place=("IQG12", "IQG12Q03"),
        governorate="IQG12",
        district="IQG12Q03",
        top=Family(("فاطمة", "عباس", "جعفر", "الطائي"), "زهراء", "198903000011",
                   "tent", "idp in camp", 0, 7, 3, 1),
        second=Family(("ماجد", "سلمان", "قاسم", "الزبيدي"), "رنا", "198903000012",
                      "unfinished", "returnee", 100_000, 6, 2, 0),
        shared=Family(("علي", "حيدر", "كاظم", "الخفاجي"), "بتول", "198903000013",
                      "rented", "", 250_000, 4, 1, 0),
        last=Family(("سارة", "وليد", "طارق", "الربيعي"), "هند", "198903000014",
                    "owned", "", 600_000, 3, 0, 0),
        bad=Family(("ياسر", "نبيل", "فراس", "الشمري"), "دعاء", "12345",
                   "tent", "", 0, 5, 1, 0),
        other=Family(("جعفر", "منتظر", "باسم", "الساعدي"), "غفران", "198903000015",
                     "owned", "", 300_000, 5, 1, 0),
    ),
}  # fmt: skip

#: Words the checks look for, per language (admin_ui/locale/ar: the merged catalog).
TEXT = {
    "ar": {
        "finished": "انتهى",
        "food": "«الغذاء»",
        "by_hand": "أُضيفت يدوياً",
        "shared": "شوركت مع الاتحاد بوصفها مساعدة موقَّعة.",
        "duplicate": "احتمال ازدواج في المساعدة",
    },
    "en": {
        "finished": "Finished",
        "food": "Received food worth",
        "by_hand": "Added by hand",
        "shared": "Shared with the federation as a signed allocation.",
        "duplicate": "Possible duplicate assistance",
    },
}


# -- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """``watan demo`` for this module, stopped with SIGINT; it must exit 0."""
    running = start_demo(tmp_path_factory.mktemp("ui-flow") / "demo")
    try:
        yield running
    finally:
        status = stop_demo(running)
    assert status == 0, f"watan demo exited with {status} after SIGINT:\n{running.output()}"


Opener = Callable[[int, str], Page]


@pytest.fixture
def phone(browser: Browser, demo: Demo, request: pytest.FixtureRequest) -> Iterator[Opener]:
    """``phone(ngo, role)``: a page in a fresh 360 px browser context at the demo's
    NGO ``ngo`` (its index), signed in as ``role``, in the test's language. One
    context per NGO and role: cookies do not tell 127.0.0.1's ports apart."""
    lang: str = request.node.callspec.params["lang"]
    contexts: list[BrowserContext] = []

    def open_page(ngo: int, role: str) -> Page:
        url = demo.ngos[ngo].url
        context = browser.new_context(
            base_url=url,
            locale=BROWSER_LOCALE[lang],
            viewport={"width": WIDTH, "height": HEIGHT},
        )
        contexts.append(context)
        context.set_default_timeout(15_000)
        username, password = demo.login(role)
        response = context.request.post(
            "/api/v1/session", data={"username": username, "password": password}
        )
        assert response.ok, f"{role} at {url}: {response.status} {response.text()}"
        context.add_cookies([{"name": "watan_lang", "value": lang, "url": url}])
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


# -- helpers ------------------------------------------------------------------------------


def number(text: str) -> int:
    """The one whole number in ``text``, in Arabic-Indic or ASCII digits."""
    found = re.findall(r"\d+", text.translate(ARABIC_DIGITS))
    assert len(found) == 1, f"not one number in {text!r}"
    return int(found[0])


def numbers(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"\d+", text.translate(ARABIC_DIGITS))]


def digits(n: int, lang: str) -> str:
    return str(n).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")) if lang == "ar" else str(n)


def check(axe: Axe, page: Page, name: str) -> None:
    """axe-core clean, no sideways scroll at 360 px, a screenshot."""
    assert_accessible(axe, page, name)
    assert_no_horizontal_scroll(page, WIDTH)
    assert screenshot(page, name).stat().st_size > 0


def display_name(family: Family) -> str:
    return " ".join(family.names)


def reload_until(page: Page, done: Callable[[], bool], deadline_s: float, what: str) -> float:
    """Reload ``page`` until ``done()``; the seconds it took. The node reaches the
    state by itself (background work, replication): only reloading shows it."""
    start = time.monotonic()
    while not done():
        waited = time.monotonic() - start
        assert waited < deadline_s, f"{what}: not within {deadline_s:.0f} s ({page.url})"
        page.wait_for_timeout(POLL_MS)
        page.reload()
    return time.monotonic() - start


def queue_ids(page: Page) -> list[int]:
    return [int(i) for i in page.locator("li.queue-item").evaluate_all(
        "items => items.map(i => i.dataset.household)"
    )]  # fmt: skip


def score_and_priority(row: Locator) -> tuple[int, int]:
    return number(row.locator(".score").inner_text()), number(row.locator(".priority").inner_text())


# -- steps --------------------------------------------------------------------------------


def import_file(
    axe: Axe, page: Page, flow: Flow, data: bytes, name: str, created: int, rejected: int
) -> None:
    """Upload ``data``, keep the suggested mapping, check, start, and wait for the
    report: ``created`` new households, ``rejected`` rows refused (a short national
    ID), and no cell of the file on the report."""
    lang = flow.lang
    page.goto("/households/import")
    check(axe, page, f"flow-{lang}-{name}-upload")
    page.locator("#f-file").set_input_files(
        {"name": f"{name}.csv", "mimeType": "text/csv", "buffer": data}
    )
    response = submit(page, page.locator("form[action='/households/import'] button"))
    assert response.status == 200
    expect(page.locator("#row-count")).to_have_text(digits(created + rejected, lang))
    national_id_header = flow.header.split(",")[5]
    expect(page.locator("#f-map\\.national_id")).to_have_value(national_id_header)
    expect(page.locator("#f-map\\.district")).to_have_value(flow.header.split(",")[7])
    check(axe, page, f"flow-{lang}-{name}-mapping")
    response = submit(page, page.locator("button[value=check]"))
    assert response.status == 200
    if rejected:
        problems = page.locator("tr.problem")
        expect(problems).to_have_count(rejected)
        expect(problems.first).to_have_attribute("data-code", "BAD_VALUE")
    else:
        expect(page.locator("#check-ok")).to_be_visible()
    check(axe, page, f"flow-{lang}-{name}-check")
    response = submit(page, page.locator("button[value=start]"))
    assert response.status == 303
    expect(page).to_have_url(re.compile(r"/households/import/\d+$"))
    # the page refreshes itself every 2 s while the import runs
    expect(page.locator("#import-state")).to_have_text(TEXT[lang]["finished"], timeout=30_000)
    expect(page.locator("#count-created")).to_have_text(digits(created, lang))
    expect(page.locator("#count-rejected")).to_have_text(digits(rejected, lang))
    expect(page.locator("#count-updated")).to_have_text(digits(0, lang))
    expect(page.locator("tr.problem")).to_have_count(rejected)
    report = page.locator("main").inner_text()
    for family in (flow.top, flow.second, flow.shared, flow.last, flow.bad, flow.other):
        assert family.names[3] not in report and family.national_id not in report  # no PII
    check(axe, page, f"flow-{lang}-{name}-report")


def open_household(page: Page, family: Family) -> int:
    """Find ``family`` by its national ID on the households page (a posted search) and
    open it; its id."""
    page.goto("/households")
    page.locator("#f-q").fill(family.national_id)
    response = submit(page, lambda: page.locator("#f-q").press("Enter"))
    assert response.status == 200
    found = page.locator(".household-item a")
    expect(found).to_have_count(1)
    expect(found.first).to_have_text(display_name(family))
    found.first.click()
    page.wait_for_load_state()
    match = re.search(r"/households/(\d+)$", page.url)
    assert match, page.url
    expect(page.locator("#national-id")).to_have_text(family.national_id)
    return int(match.group(1))


def shown_score(page: Page) -> int:
    """The household page's score, checked against its breakdown: the indicators'
    shares add up to it (node.ataa._score), and some were recorded."""
    total = number(page.locator("#score-total").inner_text().split()[0])
    lines = page.locator("table.breakdown tbody tr")
    assert lines.count() >= 5
    shares = lines.locator("td:last-child").all_inner_texts()
    assert sum(number(s) for s in shares) == total, (shares, total)
    assert lines.count() > page.locator("table.breakdown tbody tr.missing").count()
    return total


def wait_pseudonym(page: Page, what: str) -> float:
    ready = page.locator("section[aria-labelledby=pseudonym-heading] .badge-ok")
    return reload_until(page, lambda: ready.count() == 1, PSEUDONYM_DEADLINE_S, what)


def plan_distribution(page: Page, flow: Flow, title: str, target: int) -> int:
    """Fill the coordinator's plan form for food in ``flow``'s district; the new
    distribution's id."""
    page.goto("/distributions")
    page.locator("#f-title").fill(title)
    page.locator("#f-program").fill(f"flow-food-{flow.lang}")
    page.locator("#f-category").select_option("food")
    page.locator("#f-unit").select_option("basket")
    page.locator("#f-quantity").fill("1")
    page.locator("#f-value_iqd").fill("75000")
    page.locator("#f-governorate").select_option(flow.governorate)
    page.locator("#f-district").select_option(flow.district)
    page.locator("#f-target_count").fill(str(target))
    response = submit(page, page.locator("form[action='/distributions'] button[type=submit]"))
    assert response.status == 303
    expect(page).to_have_url(re.compile(r"/distributions/\d+\?done=created$"))
    expect(page.locator("h1")).to_have_text(title)
    match = re.search(r"/distributions/(\d+)", page.url)
    assert match
    return int(match.group(1))


def pick(page: Page) -> None:
    response = submit(page, page.locator("form[action$='/pick'] button[type=submit]"))
    assert response.status == 303
    expect(page).to_have_url(re.compile(r"done=picked"))


# -- the test -----------------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["ar", "en"])
def test_import_score_queue_plan_deliver_and_rerank(
    demo: Demo, phone: Opener, axe: Axe, lang: str
) -> None:
    flow, text = FLOWS[lang], TEXT[lang]
    amal = demo.ngos[A].name(lang)
    queue = f"/queue?category=food&district={flow.district}"

    # 1. import at A (five rows, one refused) and at B (the shared family and another)
    a_worker = phone(A, "case_worker")
    import_file(axe, a_worker, flow, flow.file_a, "import-a", created=4, rejected=1)
    expect(a_worker.locator("html")).to_have_attribute("dir", "rtl" if lang == "ar" else "ltr")
    b_worker = phone(B, "case_worker")
    import_file(axe, b_worker, flow, flow.file_b, "import-b", created=2, rejected=0)

    # 2. the shared family at A: scored, with its breakdown; pseudonyms ready at A and B
    shared_a = open_household(a_worker, flow.shared)
    shared_score = shown_score(a_worker)
    assert 0 < shared_score < SAME_CATEGORY_PENALTY, shared_score
    wait_pseudonym(a_worker, "the shared household's pseudonym at A")
    check(axe, a_worker, f"flow-{lang}-household-a")
    other_b = open_household(b_worker, flow.other)
    shared_b = open_household(b_worker, flow.shared)
    assert shown_score(b_worker) == shared_score  # the same facts, the same model
    wait_pseudonym(b_worker, "the shared household's pseudonym at B")
    check(axe, b_worker, f"flow-{lang}-household-b")

    # 3. B's food queue for the district before: the shared family first, nothing received
    b_coordinator = phone(B, "coordinator")
    b_coordinator.goto(queue)
    assert queue_ids(b_coordinator) == [shared_b, other_b]
    before = b_coordinator.locator(f"#queue-{shared_b}")
    assert score_and_priority(before) == (shared_score, shared_score)
    expect(before.locator("li.received")).to_have_count(0)
    expect(before.locator(".penalty")).to_have_count(0)
    other_score, other_priority = score_and_priority(b_coordinator.locator(f"#queue-{other_b}"))
    assert 0 < other_priority == other_score < shared_score
    check(axe, b_coordinator, f"flow-{lang}-queue-b-before")

    # ... and A's: the shared family third of four, below the two neediest
    a_coordinator = phone(A, "coordinator")
    a_coordinator.goto(queue)
    ids = queue_ids(a_coordinator)
    assert len(ids) == 4 and ids[2] == shared_a, ids
    rows = a_coordinator.locator("li.queue-item .household-name")
    for index, family in enumerate((flow.top, flow.second, flow.shared, flow.last)):
        expect(rows.nth(index)).to_have_text(display_name(family))
    check(axe, a_coordinator, f"flow-{lang}-queue-a")

    # 4. A plans food for the district: the top two picked, the shared family added by hand
    title = "سلال غذائية — الكوفة" if lang == "ar" else "Food baskets, Kerbela"
    distribution = plan_distribution(a_coordinator, flow, title, target=2)
    check(axe, a_coordinator, f"flow-{lang}-distribution-planned")
    pick(a_coordinator)
    picked = a_coordinator.locator("li.dist-row")
    expect(picked).to_have_count(2)
    expect(picked.nth(0).locator(".household-name")).to_have_text(display_name(flow.top))
    expect(picked.nth(1).locator(".household-name")).to_have_text(display_name(flow.second))
    reason = "أسرة مستأجرة مهددة بالإخلاء" if lang == "ar" else "Rent arrears: eviction notice"
    include = a_coordinator.locator("form[action$='/include']")
    include.locator("#f-household").fill(str(shared_a))
    include.locator("#f-reason").fill(reason)
    response = submit(a_coordinator, include.locator("button[type=submit]"))
    assert response.status == 303
    added = a_coordinator.locator(f"li#household-{shared_a}")
    expect(added).to_have_attribute("data-state", "planned")
    expect(added).to_contain_text(text["by_hand"])
    expect(added.locator(".row-reason")).to_contain_text(reason)
    check(axe, a_coordinator, f"flow-{lang}-distribution-picked")

    # 5. A's case worker delivers to the shared family on the phone
    a_worker.goto(f"/distributions/{distribution}")
    row = a_worker.locator(f"li#household-{shared_a}")
    expect(row).to_have_attribute("data-state", "planned")
    expect(row.locator(".dup-warning")).to_have_count(0)
    check(axe, a_worker, f"flow-{lang}-distribution-to-deliver")
    button = row.locator(".deliver-form button")
    box = button.bounding_box()
    assert box is not None and box["height"] >= 44 and box["width"] >= WIDTH * 0.7
    response = submit(a_worker, button)
    assert response.status == 303
    expect(row).to_have_attribute("data-state", "delivered")
    expect(row).to_contain_text(text["shared"])  # the pseudonym was ready: appended now
    expect(a_worker.locator("li.dist-row[data-state=planned]")).to_have_count(2)
    check(axe, a_worker, f"flow-{lang}-distribution-delivered")

    # 6. B's queue re-ranks: "received food ... from Al-Amal", below the other family
    b_coordinator.goto(queue)
    received = b_coordinator.locator(f"#queue-{shared_b} li.received")
    reload_until(
        b_coordinator,
        lambda: any(amal in line for line in received.all_inner_texts()),
        RERANK_DEADLINE_S,
        f"B's queue to show the delivery from {amal}",
    )
    assert queue_ids(b_coordinator) == [other_b, shared_b]
    after = b_coordinator.locator(f"#queue-{shared_b}")
    expect(received).to_have_count(1)
    line = received.first.inner_text()
    assert text["food"] in line and amal in line, line
    assert 75_000 in numbers(line), line
    score, priority = score_and_priority(after)
    assert score == shared_score
    assert priority == max(0, shared_score - SAME_CATEGORY_PENALTY) < score
    assert priority < other_priority
    expect(after.locator(".penalty")).to_be_visible()
    check(axe, b_coordinator, f"flow-{lang}-queue-b-after")

    # 7. and B's own food distribution there warns of duplicate assistance
    b_title = "سلال غذائية — الرحمة" if lang == "ar" else "Food parcels, Al-Rahma"
    b_distribution = plan_distribution(b_coordinator, flow, b_title, target=2)
    pick(b_coordinator)
    warned = b_coordinator.locator(f"li#household-{shared_b}")
    expect(warned.locator(".dup-warning")).to_contain_text(text["duplicate"])
    expect(warned.locator(".dup-warning")).to_contain_text(amal)
    expect(b_coordinator.locator(f"li#household-{other_b} .dup-warning")).to_have_count(0)
    check(axe, b_coordinator, f"flow-{lang}-distribution-b-warning")
    b_worker.goto(f"/distributions/{b_distribution}")
    blocked = b_worker.locator(f"li#household-{shared_b}")
    expect(blocked.locator(".dup-warning")).to_be_visible()
    expect(blocked.locator(".deliver-form")).to_have_count(0)  # a coordinator must override
    expect(b_worker.locator(f"li#household-{other_b} .deliver-form")).to_have_count(1)
    check(axe, b_worker, f"flow-{lang}-distribution-b-blocked")
