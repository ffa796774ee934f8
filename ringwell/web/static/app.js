// Ringwell portal: small progressive enhancements only; every page works without this file.
//
// - <form data-confirm="Really?">: asks before submitting.
// - <button data-copy="ID" hidden>: shown, and copies the text of #ID to the clipboard.
// - <select data-autosubmit> (or any select in form.filters[data-autosubmit]): submits its form on change.
// - <button data-print hidden>: shown, and prints the page.
// - .js-hide: hidden (e.g. the "Save" button beside a select that submits itself).
// - <form data-cookie-banner>: the cookie banner answers in the background and goes away (without this
//   file it is a plain form POST that comes back to the same page).
"use strict";

(function () {
  function onReady(fn) {
    if (document.readyState === "loading") {
      document.addEventListener("DOMContentLoaded", fn);
    } else {
      fn();
    }
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Fallback for plain-HTTP installs: a selected off-screen textarea and execCommand.
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "offscreen";
      document.body.appendChild(area);
      area.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      document.body.removeChild(area);
      if (ok) { resolve(); } else { reject(new Error("copy failed")); }
    });
  }

  onReady(function () {
    document.addEventListener("submit", function (event) {
      var form = event.target;
      if (!(form instanceof HTMLFormElement)) { return; }
      var question = form.getAttribute("data-confirm");
      if (question && !window.confirm(question)) {
        event.preventDefault();
        return;
      }
      // Guard against double submission (e.g. renting a number twice by a double click).
      if (form.dataset.submitted === "1") {
        event.preventDefault();
        return;
      }
      if ((form.getAttribute("method") || "get").toLowerCase() === "post") {
        form.dataset.submitted = "1";
      }
    });

    // A page restored from the back/forward cache may be submitted again.
    window.addEventListener("pageshow", function () {
      document.querySelectorAll("form[data-submitted]").forEach(function (form) { delete form.dataset.submitted; });
    });

    document.querySelectorAll("button[data-copy]").forEach(function (button) {
      button.hidden = false;
      var label = button.textContent;
      button.addEventListener("click", function () {
        var target = document.getElementById(button.getAttribute("data-copy"));
        if (!target) { return; }
        copyText(target.textContent.trim()).then(function () {
          button.textContent = "Copied";
        }, function () {
          button.textContent = "Press Ctrl+C";
          var range = document.createRange();
          range.selectNodeContents(target);
          var selection = window.getSelection();
          selection.removeAllRanges();
          selection.addRange(range);
        });
        window.setTimeout(function () { button.textContent = label; }, 2000);
      });
    });

    // Buttons only needed without JavaScript (a select that submits itself needs no "Save").
    document.querySelectorAll(".js-hide").forEach(function (element) { element.hidden = true; });

    document.querySelectorAll("select[data-autosubmit], form[data-autosubmit] select").forEach(function (select) {
      select.addEventListener("change", function () {
        if (select.form) {
          if (select.form.requestSubmit) { select.form.requestSubmit(); } else { select.form.submit(); }
        }
      });
    });

    document.querySelectorAll("form[data-cookie-banner]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.fetch || !window.FormData) { return; }
        event.preventDefault();
        var data = new FormData(form);
        if (event.submitter && event.submitter.name) { data.set(event.submitter.name, event.submitter.value); }
        window.fetch(form.action, {method: "POST", body: new URLSearchParams(data), credentials: "same-origin",
                                   headers: {"Accept": "application/json"}}).then(function (response) {
          if (!response.ok) { throw new Error("cookie choice " + response.status); }
          var banner = form.closest(".cookie-banner");
          if (banner) { banner.hidden = true; }
        }).catch(function () { form.submit(); });
      });
    });

    document.querySelectorAll("button[data-print]").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () { window.print(); });
    });
  });
})();
