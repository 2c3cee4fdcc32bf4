# ruff: noqa: RUF001 - the Russian texts are Cyrillic on purpose
"""Every text the page shows, in English and Russian, and how the page picks the language.

The language is the Mini App user's ``language_code`` (Telegram signed it), else the browser's
``Accept-Language``, else the ``lang`` signed into the link, else English. Texts are plain
strings; the few that carry markup (``<b>``) are ours, and every value put into them is escaped
by the renderer.
"""

from __future__ import annotations

from typing import Final

__all__ = ["LANGUAGES", "TEXTS", "accepted_language", "pick_language"]

LANGUAGES: Final = ("en", "ru")

_EN: Final[dict[str, str]] = {
    "title": "Log in with Telegram",
    "idle_big": "Log in with your phone",
    "idle_text": "Get a code, then scan it with Telegram on your phone.",
    "get_code": "Get a code",
    "qr_label": "QR code to scan with Telegram",
    "preparing": "Preparing your code…",
    "step1": "Open Telegram on your phone.",
    "step2": "Go to <b>Settings → Devices → Link Desktop Device</b>.",
    "step3": "Point your phone at this code.",
    "device": "This login will appear as «{name}» in <b>Settings → Devices</b>.",
    "flood": "Telegram asked us to slow down: a new code is on its way.",
    "scanned_big": "Scanned: confirm on your phone",
    "scanned_text": "Telegram on your phone asks you to confirm this login.",
    "password_big": "Two-step verification",
    "password_text": "Your account has a cloud password. Enter it to finish logging in.",
    "hint": "Hint:",
    "tries": "Wrong password. {n} tries left.",
    "password_label": "Password",
    "log_in": "Log in",
    "authorized_big": "You are logged in",
    "authorized_text": "Logged in as Telegram user {user}. You can close this page.",
    "expired_big": "The code expired",
    "expired_text": "The login took too long. Get a new code to try again.",
    "new_code": "Get a new code",
    "failed_big": "Login failed",
    "try_again": "Try again",
    "cancelled_big": "This login was cancelled",
    "start_again": "Start again",
    "logged_out_big": "Logged out",
    "log_in_again": "Log in again",
    "quarantined_big": "On hold",
    "quarantined_text": "This login is on hold for a security check. "
    "Please contact whoever sent you this link.",
    "countdown": "This login ends in {left}",
    "noscript": "This page updates itself every few seconds.",
    "reload": "Reload",
    "home": "Open the login link you were given.",
    "bound": "Only the Telegram account {name} can complete this login.",
    "app_wins": "The app that sent you this link expects another Telegram account: "
    "its choice applies.",
    "phone_big": "You opened this on your phone",
    "phone_text": "Telegram scans the code with your phone's camera, so it cannot be scanned "
    "from this screen, and Telegram accepts login codes only from its scanner. Open this "
    "link on a computer or another screen, and scan the code there with this phone.",
    "copy": "Copy the link",
    "copied": "Copied",
    # Failure reasons (stable codes never reach the user as-is).
    "r:ownership_mismatch": "A different Telegram account than the expected one was used.",
    "r:flood_wait": "Telegram asked us to wait longer than this login may take.",
    "r:password_attempts": "The two-step verification password was wrong too many times.",
    "r:crashed": "Something went wrong on our side.",
    "r:api_id_invalid": "This service's Telegram credentials were refused.",
    "r:token_invalid": "Telegram refused the login code.",
    "r:telegram_unavailable": "Telegram could not be reached.",
    "r:proxy_unreachable": "This service's connection to Telegram could not be made.",
    "r:proxy_auth_failed": "This service's connection to Telegram was refused.",
    "r:command": "The session was logged out.",
    "r:revoked": "The session was ended from a Telegram app.",
    "r:": "The login did not succeed.",
    # Notices (``?n=``).
    "n:rate_limited": "Too many tries in a short time. Wait a minute, then try again.",
    "n:wrong_state": "That step is already over; this page shows where the login is now.",
    "n:unavailable": "The service is busy right now. Try again in a moment.",
    "n:tenant_quarantined": "This login is on hold for a security check.",
    "n:form_expired": "The form was too old. Please try again.",
    "n:empty_password": "Enter your password.",
    "n:invalid_request": "That did not look right. Please try again.",
    # Error pages: title and message.
    "e:invalid_link": "This link is not valid",
    "m:invalid_link": "The link is incomplete or was changed. Ask for a new link.",
    "e:link_expired": "This link has expired",
    "m:link_expired": "Links work for a few minutes. Ask for a new one.",
    "e:rate_limited": "Too many requests",
    "m:rate_limited": "Wait a minute, then reload this page.",
    "e:form_expired": "The form has expired",
    "m:form_expired": "Go back, reload the page and try again.",
    "e:bad_request": "That did not work",
    "m:bad_request": "The request was not understood. Reload the page.",
    "e:not_found": "Nothing here",
    "m:not_found": "Open the login link you were given.",
    "e:unavailable": "Temporarily unavailable",
    "m:unavailable": "The service is busy. Try again in a moment.",
    "e:busy": "Too many open pages",
    "m:busy": "Close other tabs of this page, then reload it.",
    "e:error": "Something went wrong",
    "m:error": "Please try again in a moment.",
    "e:telegram_refused": "Telegram could not confirm who you are",
    "m:telegram_refused": "Nothing was started. Close this window and open it again from Telegram.",
}

_RU: Final[dict[str, str]] = {
    "title": "Вход через Telegram",
    "idle_big": "Вход с помощью телефона",
    "idle_text": "Получите код и отсканируйте его в Telegram на телефоне.",
    "get_code": "Получить код",
    "qr_label": "QR-код для сканирования в Telegram",
    "preparing": "Готовим код…",
    "step1": "Откройте Telegram на телефоне.",
    "step2": "Перейдите в <b>Настройки → Устройства → Подключить устройство</b>.",
    "step3": "Наведите камеру телефона на этот код.",
    "device": "Этот вход появится как «{name}» в разделе <b>Настройки → Устройства</b>.",
    "flood": "Telegram попросил подождать: новый код скоро появится.",
    "scanned_big": "Код отсканирован: подтвердите на телефоне",
    "scanned_text": "Telegram на телефоне попросит подтвердить этот вход.",
    "password_big": "Двухэтапная аутентификация",
    "password_text": "У вашего аккаунта есть облачный пароль. Введите его, чтобы завершить вход.",
    "hint": "Подсказка:",
    "tries": "Неверный пароль. Осталось попыток: {n}.",
    "password_label": "Пароль",
    "log_in": "Войти",
    "authorized_big": "Вход выполнен",
    "authorized_text": "Вы вошли как пользователь Telegram {user}. Эту страницу можно закрыть.",
    "expired_big": "Срок действия кода истёк",
    "expired_text": "Вход занял слишком много времени. Получите новый код и попробуйте снова.",
    "new_code": "Получить новый код",
    "failed_big": "Войти не удалось",
    "try_again": "Попробовать снова",
    "cancelled_big": "Этот вход отменён",
    "start_again": "Начать заново",
    "logged_out_big": "Выполнен выход",
    "log_in_again": "Войти снова",
    "quarantined_big": "Вход приостановлен",
    "quarantined_text": "Вход приостановлен для проверки безопасности. "
    "Свяжитесь с тем, кто прислал вам эту ссылку.",
    "countdown": "До конца входа: {left}",
    "noscript": "Страница обновляется сама каждые несколько секунд.",
    "reload": "Обновить",
    "home": "Откройте ссылку для входа, которую вам прислали.",
    "bound": "Завершить этот вход может только аккаунт Telegram {name}.",
    "app_wins": "Приложение, приславшее эту ссылку, ожидает другой аккаунт Telegram: "
    "действует его выбор.",
    "phone_big": "Вы открыли страницу на телефоне",
    "phone_text": "Telegram сканирует код камерой телефона, поэтому с этого экрана его не "
    "отсканировать, а коды для входа Telegram принимает только из своего сканера. Откройте "
    "эту ссылку на компьютере или другом экране и отсканируйте код этим телефоном.",
    "copy": "Скопировать ссылку",
    "copied": "Скопировано",
    "r:ownership_mismatch": "Использован не тот аккаунт Telegram, который ожидался.",
    "r:flood_wait": "Telegram попросил подождать дольше, чем может длиться этот вход.",
    "r:password_attempts": "Пароль двухэтапной аутентификации введён неверно слишком много раз.",
    "r:crashed": "У нас что-то пошло не так.",
    "r:api_id_invalid": "Telegram отклонил учётные данные этого сервиса.",
    "r:token_invalid": "Telegram отклонил код входа.",
    "r:telegram_unavailable": "Не удалось связаться с Telegram.",
    "r:proxy_unreachable": "Не удалось подключить этот сервис к Telegram.",
    "r:proxy_auth_failed": "Подключение этого сервиса к Telegram было отклонено.",
    "r:command": "Сеанс завершён.",
    "r:revoked": "Сеанс завершён из приложения Telegram.",
    "r:": "Войти не удалось.",
    "n:rate_limited": "Слишком много попыток за короткое время. Подождите минуту и повторите.",
    "n:wrong_state": "Этот шаг уже пройден; страница показывает, где сейчас вход.",
    "n:unavailable": "Сервис сейчас занят. Попробуйте чуть позже.",
    "n:tenant_quarantined": "Вход приостановлен для проверки безопасности.",
    "n:form_expired": "Форма устарела. Попробуйте ещё раз.",
    "n:empty_password": "Введите пароль.",
    "n:invalid_request": "Что-то не так. Попробуйте ещё раз.",
    "e:invalid_link": "Ссылка недействительна",
    "m:invalid_link": "Ссылка неполная или изменена. Попросите новую.",
    "e:link_expired": "Срок действия ссылки истёк",
    "m:link_expired": "Ссылка действует несколько минут. Попросите новую.",
    "e:rate_limited": "Слишком много запросов",
    "m:rate_limited": "Подождите минуту и обновите страницу.",
    "e:form_expired": "Форма устарела",
    "m:form_expired": "Вернитесь, обновите страницу и попробуйте снова.",
    "e:bad_request": "Не получилось",
    "m:bad_request": "Запрос не распознан. Обновите страницу.",
    "e:not_found": "Здесь ничего нет",
    "m:not_found": "Откройте ссылку для входа, которую вам прислали.",
    "e:unavailable": "Временно недоступно",
    "m:unavailable": "Сервис занят. Попробуйте чуть позже.",
    "e:busy": "Открыто слишком много страниц",
    "m:busy": "Закройте другие вкладки с этой страницей и обновите её.",
    "e:error": "Что-то пошло не так",
    "m:error": "Попробуйте чуть позже.",
    "e:telegram_refused": "Telegram не подтвердил, кто вы",
    "m:telegram_refused": "Ничего не запущено. Закройте это окно и откройте его снова из Telegram.",
}

TEXTS: Final[dict[str, dict[str, str]]] = {"en": _EN, "ru": _RU}
"""Language -> text key -> text; both languages have every key."""


def _supported(tag: str) -> str | None:
    primary = tag.strip().lower().replace("_", "-").split("-")[0]
    return primary if primary in LANGUAGES else None


def accepted_language(header: str) -> str | None:
    """The supported language the ``Accept-Language`` header ranks highest, if any."""
    best: tuple[float, int, str] | None = None
    for position, part in enumerate(header.split(",")[:20]):
        tag, _, params = part.partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        language = _supported(tag)
        if language and quality > 0 and (best is None or (quality, -position) > best[:2]):
            best = (quality, -position, language)
    return best[2] if best else None


def pick_language(telegram: str | None, accept: str, link: str | None) -> str:
    """The Mini App user's language, else the browser's, else the link's, else English."""
    for choice in (_supported(telegram or ""), accepted_language(accept), _supported(link or "")):
        if choice:
            return choice
    return "en"
