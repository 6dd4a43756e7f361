"""The household store (``node.ataa``): encrypted records, blind search, the audited
view, re-import, data-key rotation, duplicate suggestions. Both backends.

The privacy tests plant canary values (names, a national ID, a phone, an address)
and scan every byte the database holds for them.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, insert, select

from node.ataa import (
    BlindIndex,
    DataKeys,
    Duplicates,
    HouseholdError,
    HouseholdErrorCode,
    HouseholdService,
    ScoringStore,
)
from node.ataa._record import HouseholdRecord, Member, Sex
from node.audit import AuditLog, AuditRecord
from node.clock import FakeClock
from node.identity import Identity
from node.oracle import PseudonymResult
from node.storage import Database
from node.storage._schema import (
    ataa_data_keys,
    ataa_households,
    ataa_name_index,
    metadata,
    pseudonyms,
)
from protocol.oprf import PseudonymInput

from .conftest import KEY, NOW

IDENTITY = Identity(signing_key=KEY, encryption_secret=bytes(range(100, 132)))
STAFF = 7

# Canaries: invented names that occur nowhere else in the code or the default model.
GIVEN, FATHER, GRANDFATHER, FAMILY = "قنبرزاد", "دعبلون", "زمهريش", "الخيزراني"
MOTHER = "شهرزانة"
NID = "274918365027"
PHONE_TYPED, PHONE_E164 = "0771 234 5987", "+9647712345987"
ADDRESS = "زقاق الكناري قرب فرن السمسمي"


def canaries() -> list[bytes]:
    texts = [GIVEN, FATHER, GRANDFATHER, FAMILY, MOTHER, "شهرزانه", NID, PHONE_E164, ADDRESS]
    return [t.encode("utf-8") for t in texts] + [b"7712345987", b"1979-03-14"]


def make(**changes: Any) -> HouseholdRecord:
    base: dict[str, Any] = {
        "name": (GIVEN, FATHER, GRANDFATHER, FAMILY),
        "mother_name": MOTHER,
        "national_id": NID,
        "phone": PHONE_TYPED,
        "birth_date": "1979-03-14",
        "head_sex": "female",
        "governorate": "IQG06",
        "district": "IQG06Q05",
        "address": ADDRESS,
        "displacement": "idp_out_of_camp",
        "shelter": "tent",
        "monthly_income_iqd": 150_000,
        "members": (
            Member(age=41, sex=Sex.FEMALE),
            Member(age=9, sex=Sex.MALE, in_school=False),
            Member(age=3, sex=Sex.FEMALE, disability=True),
        ),
    }
    base.update(changes)
    return HouseholdRecord(**base)


class FakePseudonyms:
    """Stands in for ``PseudonymService`` (tested in test_oracle*): a keyed-looking
    mac, and every lookup pending."""

    def __init__(self) -> None:
        self.looked_up: list[PseudonymInput] = []

    def mac(self, item: PseudonymInput) -> bytes:
        return hashlib.sha256(b"fake-mac" + item.data).digest()

    async def lookup(self, item: PseudonymInput) -> PseudonymResult:
        self.looked_up.append(item)
        return PseudonymResult(state="pending", weak=item.weak, error="NO_CONFIG")


@dataclass
class Node:
    db: Database
    clock: FakeClock
    audit: AuditLog
    keys: DataKeys
    scoring: ScoringStore
    blind: BlindIndex
    households: HouseholdService
    duplicates: Duplicates
    pseudonyms: FakePseudonyms
    rng: Callable[[int], bytes] = field(repr=False)

    def fresh_keys(self) -> DataKeys:
        """Another DataKeys, as after a restart: an empty cache."""
        return DataKeys(self.db, IDENTITY, self.clock, self.rng, audit=self.audit)


@pytest.fixture
async def node(db: Database) -> Node:
    await db.upgrade()
    clock = FakeClock(NOW)
    rng = random.Random(5).randbytes
    audit = AuditLog(db)
    keys = DataKeys(db, IDENTITY, clock, rng, audit=audit)
    scoring = ScoringStore(db, audit, clock, keys=keys)
    blind = BlindIndex(IDENTITY)
    fake = FakePseudonyms()
    service = HouseholdService(
        db, keys=keys, blind=blind, audit=audit, clock=clock, pseudonyms=fake, scoring=scoring
    )
    duplicates = Duplicates(db, audit, clock)
    return Node(db, clock, audit, keys, scoring, blind, service, duplicates, fake, rng)


async def audit_rows(node: Node, action: str) -> list[AuditRecord]:
    return await node.audit.query(action=action, limit=200)


async def rows(db: Database, query: Any) -> list[Any]:
    def run(conn: Any) -> list[Any]:
        return list(conn.execute(query).all())

    return await db.read(run)


# -- round trips -------------------------------------------------------------------------


async def test_create_then_get_returns_the_record_its_score_and_pseudonym(node: Node) -> None:
    record = make()
    household_id = await node.households.create(record, actor=STAFF, import_id=None)
    node.clock.advance(1000)
    view = await node.households.get(household_id, actor=STAFF)
    assert view.record == record
    assert view.record.phone == PHONE_E164
    assert (view.status, view.merged_into, view.created_by) == ("active", None, STAFF)
    assert (view.registered_ms, view.updated_ms) == (NOW, NOW)
    assert view.score is not None and view.score.model_version == 1
    assert view.score.score == sum(line.weighted for line in view.score.breakdown) > 0
    by_indicator = {line.indicator: line for line in view.score.breakdown}
    assert by_indicator["shelter"].value == "tent" and by_indicator["shelter"].weight == 12
    assert by_indicator["members_with_disability"].value == 1
    assert by_indicator["debt_to_income_pct"].missing is True
    assert (view.pseudonym, view.weak, view.pseudonym_error) == ("pending", False, "NO_CONFIG")
    # The pseudonym was asked for with the strong input, and its mac kept.
    item = PseudonymInput.from_national_id(NID)
    assert item in node.pseudonyms.looked_up
    (row,) = await rows(node.db, select(ataa_households))
    assert bytes(row.pseudonym_mac) == node.pseudonyms.mac(item) and row.weak is False
    assert (row.members, row.district, row.displacement) == (3, "IQG06Q05", "idp_out_of_camp")
    assert (row.score, row.band, row.model_version) == (view.score.score, view.score.band, 1)
    summary = await node.households.summary(household_id)
    assert summary.name == record.name and summary.display_name.startswith(GIVEN + " ")
    assert summary.score == view.score.score and summary.pseudonym == "none"


async def test_update_replaces_the_record_and_reindexes(node: Node) -> None:
    household_id = await node.households.create(make(), actor=STAFF)
    changed = make(name=("سلوى", FATHER, GRANDFATHER, FAMILY), phone="07801112222")
    node.clock.advance(5)
    await node.households.update(household_id, changed, actor=STAFF)
    assert (await node.households.get(household_id, actor=STAFF)).record == changed
    assert await node.households.search(GIVEN) == []
    assert [s.id for s in await node.households.search("سلوى")] == [household_id]
    assert [s.id for s in await node.households.search("0780 111 2222")] == [household_id]
    assert await node.households.search(PHONE_TYPED) == []
    (update_row,) = await audit_rows(node, "ataa.household.update")
    assert update_row.details == f'{{"household":{household_id}}}'
    # The same record again: no write, no audit row.
    await node.households.update(household_id, changed, actor=STAFF)
    assert len(await audit_rows(node, "ataa.household.update")) == 1
    with pytest.raises(HouseholdError) as caught:
        await node.households.update(999, changed, actor=STAFF)
    assert caught.value.code is HouseholdErrorCode.NOT_FOUND


async def test_a_node_without_federation_stores_no_pseudonym(node: Node) -> None:
    service = HouseholdService(
        node.db,
        keys=node.keys,
        blind=node.blind,
        audit=node.audit,
        clock=node.clock,
        pseudonyms=None,
        scoring=node.scoring,
    )
    household_id = await service.create(make(), actor=STAFF)
    view = await service.get(household_id, actor=STAFF)
    assert (view.pseudonym, view.weak) == ("none", False)
    (row,) = await rows(node.db, select(ataa_households.c.pseudonym_mac))
    assert row.pseudonym_mac is None


async def test_list_pseudonym_state_joins_the_pseudonym_cache(node: Node) -> None:
    first = await node.households.create(make(), actor=STAFF)
    second = await node.households.create(make(national_id="300000000001", phone=None), actor=STAFF)
    macs = {first: node.pseudonyms.mac(PseudonymInput.from_national_id(NID))}
    macs[second] = node.pseudonyms.mac(PseudonymInput.from_national_id("300000000001"))
    common = {"attempts": 0, "next_ms": 0, "last_error": None, "created_ms": NOW, "updated_ms": NOW}

    def seed(conn: Any) -> None:
        conn.execute(
            insert(pseudonyms),
            [
                {"mac": macs[first], "epoch": 3, "weak": False, "value": b"p" * 32}
                | {"sealed_input": None, **common},
                {"mac": macs[second], "epoch": 0, "weak": False, "value": None}
                | {"sealed_input": b"sealed", **common},
            ],
        )

    await node.db.write(seed)
    states = {s.id: s.pseudonym for s in await node.households.list()}
    assert states == {first: "ready", second: "pending"}


# -- privacy at rest -----------------------------------------------------------------------


async def all_stored_bytes(db: Database) -> list[bytes]:
    """Every value of every column of every table, as bytes."""

    def run(conn: Any) -> list[bytes]:
        out: list[bytes] = []
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)):
                for value in row:
                    if isinstance(value, (bytes, memoryview)):
                        out.append(bytes(value))
                    elif value is not None:
                        out.append(str(value).encode("utf-8"))
        return out

    return await db.read(run)


async def test_no_plaintext_pii_in_any_column_or_in_the_sqlite_file(node: Node) -> None:
    household_id = await node.households.create(make(), actor=STAFF, import_id=4)
    await node.households.upsert(make(address=ADDRESS + " 2"), actor=STAFF, import_id=5)
    await node.households.create(make(national_id=None, phone=None), actor=STAFF)
    await node.households.get(household_id, actor=STAFF)
    found = await node.households.search(f"{GIVEN} {FATHER}")
    assert sorted(s.id for s in found) == [household_id, household_id + 1]
    await node.keys.rotate(actor=STAFF)
    stored = await all_stored_bytes(node.db)
    assert any(b"ataa.household.view_pii" in value for value in stored)  # the scan sees text
    for canary in canaries():
        leaks = [value[:40] for value in stored if canary in value]
        assert leaks == [], canary.decode()
    if node.db.backend == "sqlite":
        path = Path(str(node.db.engine.url.database))
        await node.db.close()  # the last connection checkpoints the WAL into the file
        files = [p for p in path.parent.iterdir() if p.name.startswith(path.name)]
        assert path in files
        assert b"ataa_households" in path.read_bytes()  # the scan sees the schema's text
        for file in files:  # the database, and a WAL if one was left
            content = file.read_bytes()
            for canary in canaries():
                assert canary not in content, (file.name, canary.decode())


async def test_audit_details_and_errors_hold_no_pii(node: Node) -> None:
    household_id = await node.households.create(make(), actor=STAFF)
    with pytest.raises(HouseholdError) as caught:
        await node.households.create(make(name=("سعاد", "كريم", "جواد", "العلي")), actor=STAFF)
    assert caught.value.code is HouseholdErrorCode.DUPLICATE_NATIONAL_ID
    assert caught.value.household_id == household_id
    assert NID not in str(caught.value) and NID not in repr(caught.value)
    assert GIVEN not in repr(await node.households.summary(household_id))
    for record in await node.audit.query(limit=200):
        text_ = f"{record.action} {record.target} {record.details}".encode()
        assert not [c for c in canaries() if c in text_]


# -- the audited view ----------------------------------------------------------------------


async def test_get_is_audited_and_lists_are_not(node: Node) -> None:
    household_id = await node.households.create(make(), actor=STAFF)
    seq_before, _hash = await node.audit.head()
    await node.households.list()
    await node.households.count()
    await node.households.summary(household_id)
    await node.households.summaries([household_id, 404])
    await node.households.search(GIVEN)
    await node.households.search(NID)
    assert (await node.audit.head())[0] == seq_before
    view = await node.households.get(household_id, actor=3, purpose="delivery")
    assert view.record.national_id == NID
    (row,) = await audit_rows(node, "ataa.household.view_pii")
    assert (row.seq, row.actor, row.target) == (seq_before + 1, 3, f"household:{household_id}")
    assert row.details == f'{{"household":{household_id},"purpose":"delivery"}}'
    with pytest.raises(HouseholdError) as caught:
        await node.households.get(household_id, actor=3, purpose="Ahmed's file")
    assert caught.value.code is HouseholdErrorCode.BAD_REQUEST
    with pytest.raises(HouseholdError) as caught:
        await node.households.get(404, actor=3)
    assert caught.value.code is HouseholdErrorCode.NOT_FOUND
    assert len(await audit_rows(node, "ataa.household.view_pii")) == 1


# -- search --------------------------------------------------------------------------------


async def test_search_folds_arabic_spelling_variants_and_digit_scripts(node: Node) -> None:
    ahmed = await node.households.create(
        make(
            name=("أحمد", "علي", "عبد الله", "الجبوري"),
            mother_name="فاطمة",
            national_id="198712345678",
            phone="0770 123 4567",
        ),
        actor=STAFF,
    )
    other = await node.households.create(
        make(
            name=("علي", "أحمد", "حسين", "التميمي"),
            mother_name="زينب",
            national_id="198799999999",
            phone=None,
            monthly_income_iqd=0,  # scores higher than ahmed
        ),
        actor=STAFF,
    )

    async def found(query: str) -> list[int]:
        return [s.id for s in await node.households.search(query)]

    assert await found("احمد") == [other, ahmed]  # by score, both have the word
    assert await found("أحمد علي") == [ahmed, other]  # given + father's name first
    assert await found("علي احمد") == [other, ahmed]
    assert await found("فاطمه") == [ahmed]
    assert await found("فاطمة") == [ahmed]
    assert await found("إحمد  الجبوري") == [ahmed]
    assert await found("احـمـد") == [other, ahmed]  # tatweel is ignored
    assert await found("عبدالله") == [ahmed]
    assert await found("عبد الله") == [ahmed]
    assert await found("احمد حسن") == []  # every word must match
    assert await found("١٩٨٧١٢٣٤٥٦٧٨") == [ahmed]
    assert await found("1987-1234-5678") == [ahmed]
    assert await found("٠٧٧٠ ١٢٣ ٤٥٦٧") == [ahmed]
    assert await found("+964 770 123 4567") == [ahmed]
    assert await found("198712345679") == []
    assert await found("12345") == []
    assert await found("  ") == []
    await node.households.archive(ahmed, actor=STAFF, reason="moved")
    assert await found("فاطمه") == []
    assert [s.id for s in await node.households.search("فاطمه", include_inactive=True)] == [ahmed]


@settings(max_examples=60, deadline=None)
@given(
    alef=st.sampled_from(["ا", "أ", "إ", "آ"]),
    taa=st.sampled_from(["ة", "ه"]),
    yaa=st.sampled_from(["ي", "ى", "ی"]),
    tatweel=st.booleans(),
    harakat=st.booleans(),
)
def test_name_tokens_do_not_depend_on_the_keyboard(
    alef: str, taa: str, yaa: str, tatweel: bool, harakat: bool
) -> None:
    blind = BlindIndex(IDENTITY)
    plain = blind.query("احمد فاطمه علي")
    given_ = alef + ("ـ" if tatweel else "") + "حمد" + ("\u064e" if harakat else "")
    assert blind.query(f"{given_} فاطم{taa} عل{yaa}") == plain


@settings(max_examples=60, deadline=None)
@given(
    digits=st.lists(st.integers(0, 9), min_size=12, max_size=12).filter(lambda d: len(set(d)) > 1),
    script=st.sampled_from([0x30, 0x660, 0x6F0]),
    separator=st.sampled_from(["", " ", "-", "\u200f"]),
)
def test_a_national_id_query_is_the_same_token_in_every_digit_script(
    digits: list[int], script: int, separator: str
) -> None:
    blind = BlindIndex(IDENTITY)
    typed = separator.join(chr(script + d) for d in digits)
    query = blind.query(typed)
    assert query.nid == blind.national_id("".join(map(str, digits)))
    assert query.words == ()


def test_blind_tokens_depend_on_the_node_key() -> None:
    other = BlindIndex(Identity(signing_key=KEY, encryption_secret=bytes(32)))
    assert BlindIndex(IDENTITY).national_id(NID) != other.national_id(NID)
    assert BlindIndex(IDENTITY).national_id(NID) != BlindIndex(IDENTITY).phone(NID)
    assert NID not in repr(BlindIndex(IDENTITY))


# -- re-import -----------------------------------------------------------------------------


async def test_upsert_creates_once_then_is_unchanged_or_updated(node: Node) -> None:
    assert await node.households.upsert(make(), actor=STAFF, import_id=1) == "created"
    assert await node.households.upsert(make(), actor=STAFF, import_id=2) == "unchanged"
    # The same ID typed another way is the same household.
    same = make(national_id="٢٧٤٩ ١٨٣٦ ٥٠٢٧", phone="+964 771 234 5987")
    assert await node.households.upsert(same, actor=STAFF, import_id=2) == "unchanged"
    moved = make(address="حي الجامعة")
    assert await node.households.upsert(moved, actor=STAFF, import_id=3) == "updated"
    assert await node.households.upsert(moved, actor=STAFF, import_id=3) == "unchanged"
    (household,) = await node.households.list()
    assert (await node.households.get(household.id, actor=STAFF)).record.address == "حي الجامعة"
    created = await audit_rows(node, "ataa.household.create")
    updated = await audit_rows(node, "ataa.household.update")
    assert [r.details for r in created] == [f'{{"household":{household.id},"import":1}}']
    assert [r.details for r in updated] == [f'{{"household":{household.id},"import":3}}']
    # Without a national ID every row is a new household (suggested as duplicates).
    no_id = make(national_id=None)
    assert await node.households.upsert(no_id, actor=STAFF, import_id=4) == "created"
    assert await node.households.upsert(no_id, actor=STAFF, import_id=4) == "created"
    assert await node.households.count() == 3


async def test_a_national_id_held_by_another_household_is_refused(node: Node) -> None:
    first = await node.households.create(make(), actor=STAFF)
    second = await node.households.create(make(national_id="111122223333"), actor=STAFF)
    audit_seq, _ = await node.audit.head()
    with pytest.raises(HouseholdError) as caught:
        await node.households.create(make(national_id="٢٧٤٩١٨٣٦٥٠٢٧"), actor=STAFF)
    assert (caught.value.code, caught.value.household_id) == (
        HouseholdErrorCode.DUPLICATE_NATIONAL_ID,
        first,
    )
    with pytest.raises(HouseholdError) as caught:
        await node.households.update(second, make(), actor=STAFF)
    assert caught.value.code is HouseholdErrorCode.DUPLICATE_NATIONAL_ID
    assert await node.households.count() == 2
    assert (await node.audit.head())[0] == audit_seq
    assert (await node.households.get(second, actor=STAFF)).record.national_id == "111122223333"
    (count,) = await rows(node.db, select(func.count()).select_from(ataa_name_index))
    (per_household,) = await rows(
        node.db,
        select(func.count())
        .select_from(ataa_name_index)
        .where(ataa_name_index.c.household_id == first),
    )
    assert count[0] == 2 * per_household[0]  # nothing indexed for the refused record


# -- data keys -----------------------------------------------------------------------------


async def snapshot(db: Database) -> dict[int, tuple[int, bytes]]:
    found = await rows(
        db, select(ataa_households.c.id, ataa_households.c.key_id, ataa_households.c.pii)
    )
    return {row.id: (row.key_id, bytes(row.pii)) for row in found}


async def register(node: Node, count: int) -> list[HouseholdRecord]:
    records = [
        make(national_id=f"5000000000{i:02d}", phone=f"07700000{i:03d}") for i in range(count)
    ]
    for record in records:
        await node.households.create(record, actor=STAFF)
    return records


async def test_rotation_reencrypts_every_household_and_retires_the_old_key(node: Node) -> None:
    records = await register(node, 5)
    before = await snapshot(node.db)
    (old_key,) = {key_id for key_id, _ in before.values()}
    node.clock.advance(60_000)
    result = await node.keys.rotate(actor=STAFF, batch=2)
    assert result.key_id != old_key and result.reencrypted == 5 and result.retired == (old_key,)
    after = await snapshot(node.db)
    assert {key_id for key_id, _ in after.values()} == {result.key_id}
    assert not {blob for _, blob in before.values()} & {blob for _, blob in after.values()}
    keys = {k.id: k for k in await node.fresh_keys().keys()}
    assert keys[old_key].retired_ms == NOW + 60_000 and keys[old_key].households == 0
    assert keys[result.key_id].retired_ms is None and keys[result.key_id].households == 5
    # A restarted node (empty key cache) still opens everything.
    fresh = node.fresh_keys()
    for key_id, blob in after.values():
        assert await fresh.decrypt(key_id, blob) == await node.keys.decrypt(key_id, blob)
    views = [await node.households.get(i, actor=STAFF) for i in sorted(after)]
    assert [v.record for v in views] == records
    (row,) = await audit_rows(node, "ataa.datakey.rotate")
    assert row.details == f'{{"key_id":{result.key_id},"reencrypted":5,"retired":1}}'
    # New households use the new key.
    new_id = await node.households.create(make(national_id="777777777770"), actor=STAFF)
    assert (await snapshot(node.db))[new_id][0] == result.key_id


async def test_an_interrupted_rotation_is_finished_by_the_next_run(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = await register(node, 5)
    (old_key,) = {key_id for key_id, _ in (await snapshot(node.db)).values()}
    original = node.keys._reencrypt_txn
    batches: list[int] = []

    def crash_after_one_batch(conn: Any, target: int, batch: int) -> int:
        if batches:
            raise RuntimeError("power cut")
        batches.append(target)
        return original(conn, target, batch)

    monkeypatch.setattr(node.keys, "_reencrypt_txn", crash_after_one_batch)
    with pytest.raises(RuntimeError, match="power cut"):
        await node.keys.rotate(actor=STAFF, batch=2)
    (target,) = batches
    halfway = await snapshot(node.db)
    assert sorted(key_id for key_id, _ in halfway.values()) == sorted([target] * 2 + [old_key] * 3)
    unretired = await rows(
        node.db, select(ataa_data_keys.c.id).where(ataa_data_keys.c.retired_ms.is_(None))
    )
    assert sorted(r.id for r in unretired) == sorted([old_key, target])
    # Every row still opens, under either key, and new rows use the new key.
    assert [s.name for s in await node.households.summaries(sorted(halfway))] == [
        r.name for r in records
    ]
    late = await node.households.create(make(national_id="777777777770"), actor=STAFF)
    assert (await snapshot(node.db))[late][0] == target
    # The next run (after a restart) resumes with the same new key.
    resumed = await node.fresh_keys().rotate(actor=STAFF, batch=2)
    assert (resumed.key_id, resumed.reencrypted, resumed.retired) == (target, 3, (old_key,))
    assert {key_id for key_id, _ in (await snapshot(node.db)).values()} == {target}
    assert len(await node.fresh_keys().keys()) == 2
    views = [await node.households.get(i, actor=STAFF) for i in sorted(halfway)]
    assert [v.record for v in views] == records


async def test_a_tampered_blob_is_a_coded_error(node: Node) -> None:
    household_id = await node.households.create(make(), actor=STAFF)
    (key_id, blob) = (await snapshot(node.db))[household_id]
    flipped = blob[:-1] + bytes([blob[-1] ^ 1])

    def tamper(conn: Any) -> None:
        conn.execute(
            ataa_households.update().where(ataa_households.c.id == household_id).values(pii=flipped)
        )

    await node.db.write(tamper)
    with pytest.raises(HouseholdError) as caught:
        await node.households.summary(household_id)
    assert caught.value.code is HouseholdErrorCode.CORRUPT
    other = DataKeys(
        node.db, Identity(signing_key=KEY, encryption_secret=bytes(32)), node.clock, node.rng
    )
    with pytest.raises(HouseholdError) as caught:
        await other.decrypt(key_id, blob)
    assert caught.value.code is HouseholdErrorCode.CORRUPT


# -- archive -------------------------------------------------------------------------------


async def test_archive_takes_a_household_off_lists_with_a_reason_code(node: Node) -> None:
    household_id = await node.households.create(make(), actor=STAFF)
    with pytest.raises(HouseholdError) as caught:
        await node.households.archive(household_id, actor=STAFF, reason="moved to Erbil")
    assert caught.value.code is HouseholdErrorCode.BAD_REQUEST
    await node.households.archive(household_id, actor=STAFF, reason="deceased")
    assert await node.households.list() == []
    assert [s.id for s in await node.households.list(status="archived")] == [household_id]
    assert await node.households.count(status="archived") == 1
    (row,) = await audit_rows(node, "ataa.household.archive")
    assert row.details == f'{{"household":{household_id},"reason":"deceased"}}'
    with pytest.raises(HouseholdError) as caught:
        await node.households.archive(household_id, actor=STAFF, reason="moved")
    assert caught.value.code is HouseholdErrorCode.NOT_ACTIVE
    # Re-importing it corrects the record but does not revive it.
    assert await node.households.upsert(make(address="x"), actor=STAFF, import_id=1) == "updated"
    assert (await node.households.summary(household_id)).status == "archived"


async def test_list_filters_and_orders_by_score(node: Node) -> None:
    poor = await node.households.create(
        make(national_id="600000000001", monthly_income_iqd=0), actor=STAFF
    )
    rich = await node.households.create(
        make(
            national_id="600000000002",
            monthly_income_iqd=5_000_000,
            shelter=None,
            governorate="IQG08",
            district="IQG08Q01",
        ),
        actor=STAFF,
    )
    listed = await node.households.list()
    assert [s.id for s in listed] == [poor, rich]
    assert listed[0].score is not None and listed[1].score is not None
    assert listed[0].score > listed[1].score
    assert [s.id for s in await node.households.list(district="iqg08q01")] == [rich]
    assert [s.id for s in await node.households.list(governorate="IQG06")] == [poor]
    assert await node.households.list(band="nonexistent") == []
    assert [s.id for s in await node.households.list(limit=1, offset=1)] == [rich]
    assert await node.households.count(governorate="IQG08") == 1


# -- duplicates ----------------------------------------------------------------------------


async def test_a_shared_phone_is_suggested_and_can_be_dismissed_or_merged(node: Node) -> None:
    a = await node.households.create(make(national_id="100000000001"), actor=STAFF)
    b_record = make(
        national_id="100000000002", name=("سعاد", "كريم", "جواد", "العلي"), mother_name="هدى"
    )
    b = await node.households.create(b_record, actor=STAFF)
    (suggestion,) = await node.duplicates.open_suggestions()
    assert (suggestion.a, suggestion.b, suggestion.reasons) == (a, b, ("phone",))
    assert await node.duplicates.count_open() == 1
    await node.duplicates.dismiss(b, a, actor=STAFF)
    assert await node.duplicates.open_suggestions() == []
    (dismissed,) = await audit_rows(node, "ataa.duplicate.dismiss")
    assert (dismissed.actor, dismissed.details) == (STAFF, f'{{"a":{a},"b":{b}}}')
    await node.duplicates.dismiss(a, b, actor=STAFF)  # again: nothing changes
    assert len(await audit_rows(node, "ataa.duplicate.dismiss")) == 1
    # A decided pair is never suggested again, even after an edit.
    await node.households.update(b, b_record.with_changes(address="x"), actor=STAFF)
    assert await node.duplicates.open_suggestions() == []
    c = await node.households.create(make(national_id="100000000003"), actor=STAFF)
    pairs = [(s.a, s.b, s.reasons) for s in await node.duplicates.open_suggestions()]
    assert pairs == [(a, c, ("phone", "name")), (b, c, ("phone",))]
    assert [(s.a, s.b) for s in await node.duplicates.open_suggestions(household_id=b)] == [(b, c)]
    await node.duplicates.merge(a, c, actor=STAFF)
    summary = await node.households.summary(c)
    assert (summary.status, summary.merged_into) == ("merged", a)
    assert await node.duplicates.open_suggestions() == []  # c is no longer active
    assert [s.id for s in await node.households.list()] == [a, b]  # equal scores: by id
    (merged,) = await audit_rows(node, "ataa.household.merge")
    assert (merged.target, merged.details) == (f"household:{c}", f'{{"drop":{c},"keep":{a}}}')
    with pytest.raises(HouseholdError) as caught:
        await node.duplicates.merge(a, c, actor=STAFF)
    assert caught.value.code is HouseholdErrorCode.NOT_ACTIVE
    with pytest.raises(HouseholdError) as caught:
        await node.duplicates.merge(a, a, actor=STAFF)
    assert caught.value.code is HouseholdErrorCode.BAD_REQUEST
    with pytest.raises(HouseholdError) as caught:
        await node.duplicates.dismiss(a, 999, actor=STAFF)
    assert caught.value.code is HouseholdErrorCode.NOT_FOUND
    with pytest.raises(HouseholdError) as caught:
        await node.duplicates.dismiss(a, c, actor=STAFF)
    assert caught.value.code is HouseholdErrorCode.NOT_ACTIVE
    # Merging never deletes: every row is still there.
    assert await node.households.count(status="merged") == 1


async def test_names_mother_and_birth_year_suggest_a_pair(node: Node) -> None:
    base = await node.households.create(
        make(national_id="200000000001", phone="07500000001"), actor=STAFF
    )
    # Two name parts spelled differently, one dropped, same mother and year.
    variant = await node.households.create(
        make(
            national_id="200000000002",
            phone="07500000002",
            name=(GIVEN, FATHER, "غيره", "آخرون"),
            mother_name="شهرزانه",
        ),
        actor=STAFF,
    )
    # Same names, another birth year: not suggested.
    await node.households.create(
        make(national_id="200000000003", phone="07500000003", birth_date="1990-01-01"),
        actor=STAFF,
    )
    # Same mother and year, one name part in common: not suggested.
    await node.households.create(
        make(
            national_id="200000000004",
            phone="07500000004",
            name=(GIVEN, "ثاني", "ثالث", "رابع"),
        ),
        actor=STAFF,
    )
    pairs = [(s.a, s.b, s.reasons) for s in await node.duplicates.open_suggestions()]
    assert pairs == [(base, variant, ("name",))]


async def test_the_same_weak_pseudonym_is_suggested(node: Node) -> None:
    first = await node.households.create(make(national_id=None, phone="07500000011"), actor=STAFF)
    second = await node.households.create(
        make(national_id=None, phone="07500000012", address="elsewhere"), actor=STAFF
    )
    (row,) = await rows(
        node.db, select(ataa_households.c.weak).where(ataa_households.c.id == first)
    )
    assert row.weak is True
    (suggestion,) = await node.duplicates.open_suggestions()
    assert (suggestion.a, suggestion.b) == (first, second)
    assert suggestion.reasons == ("weak_pseudonym", "name")


async def test_placeholder_names_are_not_indexed(node: Node) -> None:
    await node.households.create(
        make(national_id=None, phone="07500000021", name=("مجهول", "x", "بدون", "unknown")),
        actor=STAFF,
    )
    assert await node.households.search("مجهول") == []
    assert len(await node.households.search(MOTHER)) == 1
