/* Watan admin UI: live messages (loaded by base.html for roles that may message).

   - Listens to /messages/events (server-sent events): "unread" updates the badge in
     the navigation and the unread line of the inbox; "message" and "state" refresh
     the list region of the inbox ([data-live-region]) or of an open conversation
     (the same region, with data-thread) by fetching the page and swapping the
     region: no reload, so whatever is being typed in a form stays.
   - Before a message form is sent, checks the attachments' total size against
     data-max-bytes and says so instead of uploading too much.

   No inline script anywhere: the Content-Security-Policy allows same-origin files only.
   Without JavaScript the pages still work; they are just not live. */
(function () {
  "use strict";

  function setText(selector, text) {
    document.querySelectorAll(selector).forEach(function (element) {
      element.textContent = text;
    });
  }

  function onUnread(data) {
    document.querySelectorAll("[data-unread-badge]").forEach(function (badge) {
      badge.hidden = data.count === 0;
    });
    setText("[data-unread-count]", data.badge);
    setText("[data-unread-label]", data.label);
    setText("[data-unread-total]", data.label);
  }

  // -- refreshing the list region ---------------------------------------------------

  var refreshing = false;
  var again = false;

  function announce() {
    var status = document.querySelector("[data-live-status]");
    if (status) {
      status.textContent = "";
      window.setTimeout(function () {
        status.textContent = status.getAttribute("data-text") || "";
      }, 50);
    }
  }

  function refresh() {
    var region = document.querySelector("[data-live-region]");
    if (!region) {
      return;
    }
    if (region.contains(document.activeElement)) {
      // Swapping now would take the keyboard focus away: wait until it leaves.
      region.addEventListener("focusout", function later(event) {
        if (!region.contains(event.relatedTarget)) {
          region.removeEventListener("focusout", later);
          refresh();
        }
      });
      return;
    }
    if (refreshing) {
      again = true;
      return;
    }
    refreshing = true;
    fetch(window.location.href, {
      credentials: "same-origin",
      headers: { Accept: "text/html" },
    })
      .then(function (response) {
        return response.ok ? response.text() : Promise.reject(response.status);
      })
      .then(function (html) {
        var page = new DOMParser().parseFromString(html, "text/html");
        var fresh = page.querySelector("[data-live-region]");
        var current = document.querySelector("[data-live-region]");
        if (fresh && current) {
          current.replaceWith(document.importNode(fresh, true));
          announce();
        }
      })
      .catch(function () {
        /* the next event tries again */
      })
      .finally(function () {
        refreshing = false;
        if (again) {
          again = false;
          refresh();
        }
      });
  }

  function onChange(data) {
    var region = document.querySelector("[data-live-region]");
    if (!region) {
      return;
    }
    var thread = region.getAttribute("data-thread");
    if (!thread || thread === data.thread) {
      refresh();
    }
  }

  // -- the event stream -------------------------------------------------------------

  function listen() {
    if (!window.EventSource || !document.querySelector("[data-unread-badge]")) {
      return;
    }
    var source = new EventSource("/messages/events");
    function handler(callback) {
      return function (event) {
        try {
          callback(JSON.parse(event.data));
        } catch (error) {
          /* a malformed event changes nothing */
        }
      };
    }
    source.addEventListener("unread", handler(onUnread));
    source.addEventListener("message", handler(onChange));
    source.addEventListener("state", handler(onChange));
    window.addEventListener("pagehide", function () {
      source.close();
    });
  }

  // -- attachment size, before anything is uploaded -----------------------------------

  function guardForms() {
    document.querySelectorAll("form[data-message-form]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        var input = form.querySelector("[data-attachments]");
        var error = form.querySelector("[data-attachments-error]");
        if (!input || !input.files) {
          return;
        }
        var limit = Number(input.getAttribute("data-max-bytes"));
        var total = 0;
        for (var i = 0; i < input.files.length; i += 1) {
          total += input.files[i].size;
        }
        if (limit && total > limit) {
          event.preventDefault();
          input.setAttribute("aria-invalid", "true");
          if (error) {
            error.textContent = input.getAttribute("data-too-large") || "";
          }
          input.focus();
        }
      });
    });
  }

  function start() {
    guardForms();
    listen();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
