// tgqr: live updates for the end user's login page. The page works without this script
// (it then reloads itself while the login runs); with it, the server's events switch the
// sections, replace the QR code in place and drive the countdown. Inside Telegram (a Mini
// App) it also sends the launch data to the server (which checks it), follows Telegram's
// theme, and tells Telegram the page is ready and may be expanded.
"use strict";

(function () {
  const body = document.body;
  const TELEGRAM_WEB = "https://web.telegram.org";
  const launch = new URLSearchParams(window.location.hash.slice(1));

  function remember(name, value) {
    try {
      if (value) {
        window.sessionStorage.setItem(name, value);
      }
      return window.sessionStorage.getItem(name) || "";
    } catch (error) {
      return value || "";
    }
  }

  // Launch parameters come in the fragment of the first URL only: kept for this tab, so the
  // pages after a form (no fragment) keep the theme and still talk to Telegram.
  const inTelegram = remember("tgqr-miniapp",
    launch.get("tgWebAppPlatform") || (launch.get("tgWebAppData") ? "unknown" : ""));

  function postEvent(eventType, eventData) {
    const data = JSON.stringify(eventData || {});
    if (window.TelegramWebviewProxy && window.TelegramWebviewProxy.postEvent) {
      window.TelegramWebviewProxy.postEvent(eventType, data);
    } else if (window.parent !== window) {
      window.parent.postMessage(JSON.stringify({ eventType: eventType, eventData: eventData || {} }),
        TELEGRAM_WEB);
    }
  }

  function applyTheme(colours) {
    const names = {
      secondary_bg_color: "--bg",
      bg_color: "--card",
      text_color: "--text",
      hint_color: "--muted",
      button_color: "--accent",
      button_text_color: "--accent-text",
    };
    if (!colours || typeof colours !== "object") {
      return;
    }
    Object.keys(names).forEach(function (key) {
      const value = colours[key];
      if (typeof value === "string" && /^#[0-9a-fA-F]{6}$/.test(value)) {
        document.documentElement.style.setProperty(names[key], value);
      }
    });
    document.documentElement.dataset.theme = "telegram";
  }

  function theme(raw) {
    try {
      applyTheme(JSON.parse(raw));
    } catch (error) {
      // not JSON: keep the page's own colours
    }
  }

  function receiveEvent(eventType, eventData) {
    if (eventType === "theme_changed" && eventData && eventData.theme_params) {
      remember("tgqr-theme", JSON.stringify(eventData.theme_params));
      applyTheme(eventData.theme_params);
    }
  }

  if (inTelegram) {
    theme(remember("tgqr-theme", launch.get("tgWebAppThemeParams")));
    // Telegram's apps call one of these; Telegram Web posts messages from the parent frame.
    window.Telegram = window.Telegram || {};
    window.Telegram.WebView = { receiveEvent: receiveEvent };
    window.TelegramGameProxy = { receiveEvent: receiveEvent };
    window.addEventListener("message", function (message) {
      if (message.origin !== TELEGRAM_WEB || message.source !== window.parent) {
        return;
      }
      try {
        const parsed = JSON.parse(message.data);
        receiveEvent(parsed.eventType, parsed.eventData);
      } catch (error) {
        // not Telegram's
      }
    });
    postEvent("web_app_ready");
    postEvent("web_app_expand");
  }

  document.querySelectorAll("button.copy").forEach(function (button) {
    const field = button.parentElement.querySelector("input.link");
    if (!field || !navigator.clipboard) {
      return;
    }
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(field.value).then(function () {
        button.textContent = button.dataset.copied || button.textContent;
      });
    });
  });

  // The server checks the launch data (never this script): sent once, it answers with the
  // page bound to the Telegram user, or with an error page.
  const initData = launch.get("tgWebAppData");
  if (initData && body.dataset.telegram && body.dataset.csrf) {
    const form = document.createElement("form");
    form.method = "post";
    form.action = body.dataset.telegram;
    form.hidden = true;
    [["csrf", body.dataset.csrf], ["init_data", initData]].forEach(function (pair) {
      const input = document.createElement("input");
      input.type = "hidden";
      input.name = pair[0];
      input.value = pair[1];
      form.appendChild(input);
    });
    body.appendChild(form);
    form.submit();
    return;
  }

  const source = body.dataset.events;
  if (!source) {
    return;
  }
  const QR = /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" viewBox="0 0 \d+ \d+" class="qr"><path fill="#fff" d="[Mhvz0-9 .-]+"\/><path stroke="#000" d="[Mmhvz0-9 .-]+"\/><\/svg>$/;
  // The one markup sink: only QR codes as the server renders them pass (Trusted Types).
  const policy = window.trustedTypes
    ? window.trustedTypes.createPolicy("tgqr-qr", {
        createHTML: function (markup) {
          if (!QR.test(markup)) {
            throw new TypeError("not a QR code");
          }
          return markup;
        },
      })
    : { createHTML: function (markup) { return QR.test(markup) ? markup : ""; } };

  let deadline = body.dataset.deadline ? Date.parse(body.dataset.deadline) : NaN;
  let offset = body.dataset.now ? Date.parse(body.dataset.now) - Date.now() : 0;
  let shownQr = "";

  function fields(name) {
    return document.querySelectorAll('[data-field="' + name + '"]');
  }

  function fill(name, text, visible) {
    fields(name).forEach(function (element) {
      const target = element.querySelector("span") || element;
      if (text !== null) {
        target.textContent = String(text);
      }
      if (visible !== undefined) {
        element.hidden = !visible;
      }
    });
  }

  function showQr(markup) {
    const box = document.getElementById("qr");
    if (!box || markup === shownQr) {
      return;
    }
    if (!markup) {
      const wait = document.createElement("p");
      wait.className = "wait";
      wait.textContent = body.dataset.preparing || "…";
      box.replaceChildren(wait);
    } else {
      const parsed = new DOMParser().parseFromString(policy.createHTML(markup), "image/svg+xml");
      box.replaceChildren(document.importNode(parsed.documentElement, true));
    }
    shownQr = markup;
  }

  function tick() {
    const countdown = document.getElementById("countdown");
    const left = document.getElementById("left");
    if (!countdown || !left) {
      return;
    }
    if (isNaN(deadline)) {
      countdown.hidden = true;
      return;
    }
    const seconds = Math.max(0, Math.floor((deadline - (Date.now() + offset)) / 1000));
    left.textContent = Math.floor(seconds / 60) + ":" + String(seconds % 60).padStart(2, "0");
    countdown.hidden = false;
  }

  function apply(view) {
    const previous = body.dataset.state;
    offset = Date.parse(view.now) - Date.now();
    deadline = view.deadline ? Date.parse(view.deadline) : NaN;
    body.dataset.state = view.state;
    document.querySelectorAll("section[data-for]").forEach(function (section) {
      section.hidden = section.dataset.for !== view.state;
    });
    if (previous !== view.state) {
      const notice = document.getElementById("notice");
      if (notice) {
        notice.hidden = true;
      }
    }
    showQr(view.qr || "");
    fill("hint", view.hint, Boolean(view.hint));
    fill("tries", view.tries_left, view.tries_left !== null);
    fill("user", view.user_id === null ? "" : view.user_id);
    fill("reason", view.reason);
    fill("flood", null, Boolean(view.retry_at));
    tick();
    if (view.state === "password_required" && previous !== view.state) {
      const input = document.getElementById("password");
      if (input) {
        input.focus();
      }
    }
  }

  const qrBox = document.getElementById("qr");
  const initial = qrBox ? qrBox.querySelector("svg") : null;
  shownQr = initial ? initial.outerHTML : "";
  tick();
  window.setInterval(tick, 1000);
  if (!window.EventSource) {
    return;
  }
  const events = new EventSource(source);
  events.addEventListener("state", function (message) {
    apply(JSON.parse(message.data));
  });
  events.addEventListener("end", function () {
    events.close();
    window.location.reload();
  });
  events.addEventListener("error", function () {
    if (events.readyState === EventSource.CLOSED) {
      // Refused (the link expired or was rate limited): the page says why.
      window.setTimeout(function () { window.location.reload(); }, 1000);
    }
  });
})();
