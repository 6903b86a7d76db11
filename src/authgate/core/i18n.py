"""Localised, user-safe messages keyed by the stable error codes; shared by every surface.

Locale comes from the ``locale`` header, then ``Accept-Language``; the default is ``en``.
"""

from __future__ import annotations

from authgate.core.errors import ErrorCode as C

LOCALES = ("en", "zh-Hant", "zh", "fr", "sw")

_EN: dict[str, str] = {
    C.MALFORMED_JSON: "Malformed JSON body",
    C.INVALID_FIELD: "Invalid value for {field}",
    C.BODY_TOO_LARGE: "Request body too large",
    C.ROUTE_NOT_FOUND: "Not found",
    C.METHOD_NOT_ALLOWED: "Method not allowed",
    C.MISSING_HEADER: "Missing or invalid header: {field}",
    C.ACCOUNT_NOT_FOUND: "The username does not exist",
    C.USER_EXISTS: "User already exists",
    C.IDENTIFIER_TAKEN: "This {field} is already in use",
    C.INVALID_CREDENTIALS: "Invalid username or password",
    C.USER_NOT_FOUND: "User not found",
    C.ACCOUNT_INACTIVE: "The account is inactive",
    C.ACCOUNT_LOCKED: "The account is locked",
    C.PASSWORD_ALREADY_SET: "A password is already set",
    C.PASSWORD_POLICY: "The password does not meet the policy",
    C.TOKEN_MISSING: "Token is missing or invalid",
    C.TOKEN_INVALID: "Token is missing or invalid",
    C.TOKEN_EXPIRED: "Token has expired",
    C.REFRESH_INVALID: "Invalid refresh token",
    C.REFRESH_EXPIRED: "Refresh token expired",
    C.INSUFFICIENT_SCOPE: "This token may not be used here",
    C.FORBIDDEN: "Forbidden",
    C.CSRF_INVALID: "Invalid or missing CSRF token",
    C.SIGNATURE_INVALID: "Invalid app signature",
    C.CLIENT_INVALID: "Invalid client",
    C.APP_VERSION_TOO_OLD: "This app version is no longer supported; please update",
    C.OTP_INVALID: "The verification code is wrong or has expired",
    C.OTP_TOKEN_INVALID: "The verification request is invalid or has expired",
    C.OTP_NATURE_MISMATCH: "The verification request is not for this action",
    C.VERIFICATION_INVALID: "The verification link is invalid or has expired",
    C.REDIRECT_NOT_ALLOWED: "The redirect URL is not allowed",
    C.PIN_NOT_SET: "No PIN is set",
    C.PIN_INVALID: "The PIN is wrong",
    C.PIN_LOCKED: "Too many wrong PINs; reset the PIN to use it again",
    C.NO_CHANNEL: "No message channel is configured",
    C.MESSAGE_NOT_SENT: "The message could not be sent; please try again later",
    C.RATE_LIMITED: "Too many requests; try again in {retry_after} seconds",
    C.OVERLOADED: "The service is busy; please try again",
    C.SERVICE_UNAVAILABLE: "The service is temporarily unavailable",
    C.FEDERATED_TOKEN_INVALID: "Invalid or expired Firebase token",
    C.ONBOARDING_OUT_OF_ORDER: "This onboarding step is not the current one",
    C.FEDERATED_EMAIL_CONFLICT: "An account with this email already exists; verify your email address to sign in with it",
    C.NOT_FOUND: "Not found",
    C.INTERNAL: "Internal server error",
    C.WEBHOOK_INVALID: "Invalid webhook signature or payload",
}

_ZH_HANT: dict[str, str] = {
    C.MISSING_HEADER: "缺少或無效的標頭：{field}",
    C.CSRF_INVALID: "CSRF 令牌無效或缺失",
    C.SIGNATURE_INVALID: "應用程式簽名無效",
    C.APP_VERSION_TOO_OLD: "此應用程式版本已不再支援，請更新",
    C.ACCOUNT_NOT_FOUND: "輸入的用戶名不存在",
    C.INVALID_FIELD: "{field} 的值無效",
    C.MALFORMED_JSON: "JSON 格式錯誤",
    C.USER_EXISTS: "用戶已存在",
    C.IDENTIFIER_TAKEN: "此{field}已被使用",
    C.INVALID_CREDENTIALS: "用戶名或密碼錯誤",
    C.ACCOUNT_INACTIVE: "帳戶已停用",
    C.ACCOUNT_LOCKED: "帳戶已被鎖定",
    C.PASSWORD_ALREADY_SET: "已設定密碼",
    C.PASSWORD_POLICY: "密碼不符合要求",
    C.TOKEN_MISSING: "令牌缺失或無效",
    C.TOKEN_INVALID: "令牌缺失或無效",
    C.TOKEN_EXPIRED: "令牌已過期",
    C.OTP_INVALID: "驗證碼錯誤或已過期",
    C.OTP_TOKEN_INVALID: "驗證請求無效或已過期",
    C.PIN_INVALID: "PIN 碼錯誤",
    C.PIN_LOCKED: "PIN 碼錯誤次數過多，請重設 PIN 碼",
    C.RATE_LIMITED: "請求過於頻繁，請於 {retry_after} 秒後再試",
    C.MESSAGE_NOT_SENT: "訊息發送失敗，請稍後再試",
    C.SERVICE_UNAVAILABLE: "服務暫時無法使用",
    C.OTP_NATURE_MISMATCH: "驗證請求與此操作不符",
    C.PIN_NOT_SET: "尚未設定 PIN 碼",
    C.BODY_TOO_LARGE: "請求內容過大",
    C.ROUTE_NOT_FOUND: "找不到資源",
    C.METHOD_NOT_ALLOWED: "不允許的請求方法",
    C.OVERLOADED: "服務繁忙，請稍後再試",
    C.INTERNAL: "伺服器內部錯誤",
    C.VERIFICATION_INVALID: "驗證連結無效或已過期",
    C.FORBIDDEN: "沒有權限",
    C.NO_CHANNEL: "尚未設定訊息發送管道",
    C.USER_NOT_FOUND: "找不到用戶",
    C.REFRESH_INVALID: "重新整理令牌無效",
    C.REFRESH_EXPIRED: "重新整理令牌已過期",
    C.INSUFFICIENT_SCOPE: "此令牌不可在此使用",
    C.CLIENT_INVALID: "客戶端無效",
    C.REDIRECT_NOT_ALLOWED: "不允許重新導向至此網址",
    C.FEDERATED_TOKEN_INVALID: "Firebase 令牌無效或已過期",
    C.ONBOARDING_OUT_OF_ORDER: "此設定步驟並非目前的步驟",
    C.FEDERATED_EMAIL_CONFLICT: "已有帳戶使用此電郵地址，請先驗證電郵地址，再以該帳戶登入",
    C.NOT_FOUND: "找不到資源",
    C.WEBHOOK_INVALID: "回呼通知的簽名或內容無效",
}

_ZH: dict[str, str] = {
    C.MISSING_HEADER: "缺少或无效的请求头：{field}",
    C.CSRF_INVALID: "CSRF 令牌无效或缺失",
    C.SIGNATURE_INVALID: "应用签名无效",
    C.APP_VERSION_TOO_OLD: "此应用版本已不再支持，请更新",
    C.ACCOUNT_NOT_FOUND: "输入的用户名不存在",
    C.INVALID_FIELD: "{field} 的值无效",
    C.MALFORMED_JSON: "JSON 格式错误",
    C.USER_EXISTS: "用户已存在",
    C.IDENTIFIER_TAKEN: "此{field}已被使用",
    C.INVALID_CREDENTIALS: "用户名或密码错误",
    C.ACCOUNT_INACTIVE: "账户已停用",
    C.ACCOUNT_LOCKED: "账户已被锁定",
    C.PASSWORD_ALREADY_SET: "已设置密码",
    C.PASSWORD_POLICY: "密码不符合要求",
    C.TOKEN_MISSING: "令牌缺失或无效",
    C.TOKEN_INVALID: "令牌缺失或无效",
    C.TOKEN_EXPIRED: "令牌已过期",
    C.OTP_INVALID: "验证码错误或已过期",
    C.OTP_TOKEN_INVALID: "验证请求无效或已过期",
    C.PIN_INVALID: "PIN 码错误",
    C.PIN_LOCKED: "PIN 码错误次数过多，请重置 PIN 码",
    C.RATE_LIMITED: "请求过于频繁，请在 {retry_after} 秒后重试",
    C.MESSAGE_NOT_SENT: "消息发送失败，请稍后再试",
    C.SERVICE_UNAVAILABLE: "服务暂时不可用",
    C.OTP_NATURE_MISMATCH: "验证请求与此操作不符",
    C.PIN_NOT_SET: "尚未设置 PIN 码",
    C.BODY_TOO_LARGE: "请求内容过大",
    C.ROUTE_NOT_FOUND: "找不到资源",
    C.METHOD_NOT_ALLOWED: "不允许的请求方法",
    C.OVERLOADED: "服务繁忙，请稍后再试",
    C.INTERNAL: "服务器内部错误",
    C.VERIFICATION_INVALID: "验证链接无效或已过期",
    C.FORBIDDEN: "没有权限",
    C.NO_CHANNEL: "尚未配置消息发送渠道",
    C.USER_NOT_FOUND: "找不到用户",
    C.REFRESH_INVALID: "刷新令牌无效",
    C.REFRESH_EXPIRED: "刷新令牌已过期",
    C.INSUFFICIENT_SCOPE: "此令牌不能在此使用",
    C.CLIENT_INVALID: "客户端无效",
    C.REDIRECT_NOT_ALLOWED: "不允许重定向到此网址",
    C.FEDERATED_TOKEN_INVALID: "Firebase 令牌无效或已过期",
    C.ONBOARDING_OUT_OF_ORDER: "此设置步骤不是当前步骤",
    C.FEDERATED_EMAIL_CONFLICT: "已有账户使用此电子邮箱，请先验证电子邮箱，再用该账户登录",
    C.NOT_FOUND: "找不到资源",
    C.WEBHOOK_INVALID: "回调通知的签名或内容无效",
}

_FR: dict[str, str] = {
    C.MISSING_HEADER: "En-tête manquant ou invalide : {field}",
    C.CSRF_INVALID: "Jeton CSRF invalide ou manquant",
    C.SIGNATURE_INVALID: "Signature de l'application invalide",
    C.APP_VERSION_TOO_OLD: "Cette version de l'application n'est plus prise en charge ; veuillez la mettre à jour",
    C.ACCOUNT_NOT_FOUND: "Le nom d'utilisateur n'existe pas",
    C.INVALID_FIELD: "Valeur invalide pour {field}",
    C.MALFORMED_JSON: "Corps JSON mal formé",
    C.USER_EXISTS: "L'utilisateur existe déjà",
    C.IDENTIFIER_TAKEN: "Cette valeur est déjà utilisée",
    C.INVALID_CREDENTIALS: "Nom d'utilisateur ou mot de passe invalide",
    C.ACCOUNT_INACTIVE: "Le compte est inactif",
    C.ACCOUNT_LOCKED: "Le compte est verrouillé",
    C.PASSWORD_ALREADY_SET: "Un mot de passe est déjà défini",
    C.PASSWORD_POLICY: "Le mot de passe ne respecte pas la politique",
    C.TOKEN_MISSING: "Jeton manquant ou invalide",
    C.TOKEN_INVALID: "Jeton manquant ou invalide",
    C.TOKEN_EXPIRED: "Le jeton a expiré",
    C.OTP_INVALID: "Le code de vérification est faux ou a expiré",
    C.OTP_TOKEN_INVALID: "La demande de vérification est invalide ou a expiré",
    C.PIN_INVALID: "Le code PIN est faux",
    C.PIN_LOCKED: "Trop de codes PIN erronés ; réinitialisez le code PIN",
    C.RATE_LIMITED: "Trop de requêtes ; réessayez dans {retry_after} secondes",
    C.MESSAGE_NOT_SENT: "Le message n'a pas pu être envoyé ; réessayez plus tard",
    C.SERVICE_UNAVAILABLE: "Le service est temporairement indisponible",
    C.OTP_NATURE_MISMATCH: "La demande de vérification ne correspond pas à cette action",
    C.PIN_NOT_SET: "Aucun code PIN n'est défini",
    C.BODY_TOO_LARGE: "Corps de requête trop volumineux",
    C.ROUTE_NOT_FOUND: "Introuvable",
    C.METHOD_NOT_ALLOWED: "Méthode non autorisée",
    C.OVERLOADED: "Le service est occupé ; réessayez",
    C.INTERNAL: "Erreur interne du serveur",
    C.VERIFICATION_INVALID: "Le lien de vérification est invalide ou a expiré",
    C.FORBIDDEN: "Accès refusé",
    C.NO_CHANNEL: "Aucun canal d'envoi de messages n'est configuré",
    C.USER_NOT_FOUND: "Utilisateur introuvable",
    C.REFRESH_INVALID: "Jeton de rafraîchissement invalide",
    C.REFRESH_EXPIRED: "Le jeton de rafraîchissement a expiré",
    C.INSUFFICIENT_SCOPE: "Ce jeton ne peut pas être utilisé ici",
    C.CLIENT_INVALID: "Client invalide",
    C.REDIRECT_NOT_ALLOWED: "L'adresse de redirection n'est pas autorisée",
    C.FEDERATED_TOKEN_INVALID: "Jeton Firebase invalide ou expiré",
    C.ONBOARDING_OUT_OF_ORDER: "Cette étape de l'inscription n'est pas l'étape en cours",
    C.FEDERATED_EMAIL_CONFLICT: "Un compte existe déjà avec cette adresse e-mail ; vérifiez votre adresse e-mail pour vous connecter avec ce compte",
    C.NOT_FOUND: "Introuvable",
    C.WEBHOOK_INVALID: "Signature ou contenu de la notification invalide",
}

_SW: dict[str, str] = {
    C.MISSING_HEADER: "Kichwa cha ombi kinakosekana au si sahihi: {field}",
    C.CSRF_INVALID: "Tokeni ya CSRF si sahihi au haipo",
    C.SIGNATURE_INVALID: "Sahihi ya programu si sahihi",
    C.APP_VERSION_TOO_OLD: "Toleo hili la programu halitumiki tena; tafadhali sasisha",
    C.ACCOUNT_NOT_FOUND: "Jina la mtumiaji halipo",
    C.INVALID_FIELD: "Thamani batili ya {field}",
    C.MALFORMED_JSON: "JSON si sahihi",
    C.USER_EXISTS: "Mtumiaji tayari yupo",
    C.IDENTIFIER_TAKEN: "Taarifa hii tayari inatumika",
    C.INVALID_CREDENTIALS: "Jina la mtumiaji au nenosiri si sahihi",
    C.ACCOUNT_INACTIVE: "Akaunti haitumiki",
    C.ACCOUNT_LOCKED: "Akaunti imefungwa",
    C.PASSWORD_ALREADY_SET: "Nenosiri tayari limewekwa",
    C.PASSWORD_POLICY: "Nenosiri halikidhi masharti",
    C.TOKEN_MISSING: "Tokeni haipo au si sahihi",
    C.TOKEN_INVALID: "Tokeni haipo au si sahihi",
    C.TOKEN_EXPIRED: "Tokeni imeisha muda",
    C.OTP_INVALID: "Nambari ya uthibitisho si sahihi au imeisha muda",
    C.OTP_TOKEN_INVALID: "Ombi la uthibitisho si sahihi au limeisha muda",
    C.PIN_INVALID: "PIN si sahihi",
    C.PIN_LOCKED: "PIN zisizo sahihi ni nyingi mno; weka PIN upya",
    C.RATE_LIMITED: "Maombi mengi mno; jaribu tena baada ya sekunde {retry_after}",
    C.MESSAGE_NOT_SENT: "Ujumbe haukutumwa; jaribu tena baadaye",
    C.SERVICE_UNAVAILABLE: "Huduma haipatikani kwa sasa",
    C.OTP_NATURE_MISMATCH: "Ombi la uthibitisho si la kitendo hiki",
    C.PIN_NOT_SET: "Hakuna PIN iliyowekwa",
    C.BODY_TOO_LARGE: "Maudhui ya ombi ni makubwa mno",
    C.ROUTE_NOT_FOUND: "Haipatikani",
    C.METHOD_NOT_ALLOWED: "Mbinu hairuhusiwi",
    C.OVERLOADED: "Huduma ina shughuli nyingi; jaribu tena",
    C.INTERNAL: "Hitilafu ya ndani ya seva",
    C.VERIFICATION_INVALID: "Kiungo cha uthibitisho si sahihi au kimeisha muda",
    C.FORBIDDEN: "Huruhusiwi",
    C.NO_CHANNEL: "Hakuna njia ya kutuma ujumbe iliyowekwa",
    C.USER_NOT_FOUND: "Mtumiaji hapatikani",
    C.REFRESH_INVALID: "Tokeni ya kuonyesha upya si sahihi",
    C.REFRESH_EXPIRED: "Tokeni ya kuonyesha upya imeisha muda",
    C.INSUFFICIENT_SCOPE: "Tokeni hii haiwezi kutumika hapa",
    C.CLIENT_INVALID: "Mteja si sahihi",
    C.REDIRECT_NOT_ALLOWED: "Anwani ya kuelekeza upya hairuhusiwi",
    C.FEDERATED_TOKEN_INVALID: "Tokeni ya Firebase si sahihi au imeisha muda",
    C.ONBOARDING_OUT_OF_ORDER: "Hatua hii ya usajili si hatua ya sasa",
    C.FEDERATED_EMAIL_CONFLICT: "Akaunti yenye barua pepe hii tayari ipo; thibitisha anwani yako ya barua pepe ili uingie nayo",
    C.NOT_FOUND: "Haipatikani",
    C.WEBHOOK_INVALID: "Sahihi au maudhui ya arifa si sahihi",
}

CATALOGUE: dict[str, dict[str, str]] = {"en": _EN, "zh-Hant": _ZH_HANT, "zh": _ZH, "fr": _FR, "sw": _SW}

# ``{field}`` in a sentence is an API name ("email", "phoneNumber"); the Chinese sentences need the
# thing it names in their own words ("此電郵地址已被使用", not "此email已被使用"). Other codes show
# ``{field}`` as the name the client sent, which is what a developer reading it looks for.
_FIELD_NOUNS: dict[str, dict[str, str]] = {
    "zh-Hant": {"email": "電郵地址", "phone": "電話號碼", "phoneNumber": "電話號碼", "username": "用戶名",
                "identity": "外部帳戶", "": "資料"},
    "zh": {"email": "电子邮箱", "phone": "电话号码", "phoneNumber": "电话号码", "username": "用户名",
           "identity": "外部账户", "": "信息"},
}
_NOUN_CODES = frozenset({C.IDENTIFIER_TAKEN})

# English, French and Swahili say "already in use" in whole sentences: French and Swahili make the
# demonstrative and the verb agree with the noun ("Cette adresse e-mail est déjà utilisée", "Ce
# numéro de téléphone est déjà utilisé"; "Anwani hii ... inatumika", "Jina hili ... linatumika"), so
# a noun put into one template cannot say it. A field none of these name gets the locale's own
# IDENTIFIER_TAKEN sentence ("Cette valeur est déjà utilisée"; English names the field as sent).
# Chinese needs no agreement: it puts ``_FIELD_NOUNS`` into its one template.
_IN_USE: dict[str, dict[str, str]] = {
    "en": {"email": "This email address is already in use", "phone": "This phone number is already in use",
           "username": "This username is already in use", "identity": "This external account is already in use",
           "": "This value is already in use"},
    "fr": {"email": "Cette adresse e-mail est déjà utilisée", "phone": "Ce numéro de téléphone est déjà utilisé",
           "username": "Ce nom d'utilisateur est déjà utilisé", "identity": "Ce compte externe est déjà utilisé"},
    "sw": {"email": "Anwani hii ya barua pepe tayari inatumika", "phone": "Nambari hii ya simu tayari inatumika",
           "username": "Jina hili la mtumiaji tayari linatumika", "identity": "Akaunti hii ya nje tayari inatumika"},
}
# What ``{field}`` names: the core's API names, and the hosted pages' labels for them (web/strings.py
# ``label_email``/``label_phone``/``label_username`` in en, fr and sw), which the pages pass instead.
_TAKEN_THINGS: dict[str, str] = {
    "email": "email", "Email": "email", "E-mail": "email", "Barua pepe": "email",
    "phone": "phone", "phoneNumber": "phone", "Phone": "phone", "Téléphone": "phone", "Simu": "phone",
    "username": "username", "Username": "username", "Nom d'utilisateur": "username",
    "Jina la mtumiaji": "username",
    "identity": "identity",
}


def negotiate(locale_header: str | None, accept_language: str | None) -> str:
    """Pick one of LOCALES from the ``locale`` header, then ``Accept-Language``; ``en`` by default.

    Each header is a list of language ranges with optional weights (RFC 9110 §12.5.4): ranges are
    tried from the highest ``q`` down (in the order sent when equal); ``q=0`` means "not this one";
    ``*`` accepts any language, so it picks the default. A header with nothing we serve leaves the
    choice to the next one.
    """
    for raw in (locale_header, accept_language):
        if not raw:
            continue
        found = _best(raw)
        if found:
            return found
    return "en"


def _best(header: str) -> str | None:
    ranges: list[tuple[float, int, str]] = []
    refused: list[str] = []
    for index, part in enumerate(header.split(",")):
        tag, *params = (p.strip() for p in part.split(";"))
        tag = tag.replace("_", "-")
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                q = _weight(value.strip())
        if not tag or q < 0:  # an unreadable weight: the range is ignored
            continue
        if q == 0:
            refused.append(tag.lower())
        else:
            ranges.append((-q, index, tag))
    for _, _, tag in sorted(ranges):
        if tag == "*":
            return next((loc for loc in LOCALES if not _matches_any(loc.lower(), refused)), None)
        found = match_locale(tag)
        if found:
            return found
    return None


def _matches_any(locale: str, ranges: list[str]) -> bool:
    """Basic filtering (RFC 4647 §3.3.1): ``zh`` covers ``zh-hant``."""
    return any(locale == r or locale.startswith(r + "-") for r in ranges)


def _weight(value: str) -> float:
    """A qvalue: 0 to 1 with at most three decimals (RFC 9110 §12.4.2); -1 when it is not one."""
    whole, _, decimals = value.partition(".")
    digits = decimals == "" or (decimals.isascii() and decimals.isdigit())
    if whole not in ("0", "1") or len(decimals) > 3 or not digits:
        return -1.0
    q = float(f"{whole}.{decimals or '0'}")
    return q if q <= 1 else -1.0


def match_locale(tag: str) -> str | None:
    low = tag.lower()
    if not low:
        return None
    if low in ("zh-hant", "zh-tw", "zh-hk", "zh-mo") or low.startswith("zh-hant"):
        return "zh-Hant"
    primary = low.split("-")[0]
    return primary if primary in ("en", "zh", "fr", "sw") else None


def message(code: str, locale: str = "en", **params: object) -> str:
    lang = locale if locale in CATALOGUE else "en"
    template = CATALOGUE[lang].get(code) or _EN.get(code) or code
    if code == C.IDENTIFIER_TAKEN and lang in _IN_USE:
        field = str(params.get("field") or "")
        thing = _TAKEN_THINGS.get(field) if field else ""
        if thing in _IN_USE[lang]:
            return _IN_USE[lang][thing]
    nouns = _FIELD_NOUNS.get(lang)
    if nouns and code in _NOUN_CODES and template is not _EN.get(code):
        field = str(params.get("field") or "")
        # a name already in the locale's words (the hosted pages pass their labels) stays as it is
        params["field"] = nouns.get(field) or (field if field and not field.isascii() else nouns[""])
    try:
        return template.format(**params)
    except (KeyError, IndexError):
        return template
