"""Matching keys for Vietnamese (and English) chat messages: normalise, fold, tokenise.

Members type on cheap phones, with or without diacritics, sometimes in NFD from older keyboards,
and in chat shorthand ("ko nhan dc ma otp", "quên mk", "sdt doi roi"). The FAQ matcher must see
all of these as the same words, so this module turns any text into one canonical form:

1. ``clean`` (from bot.textfold): Unicode NFC, zero-width and bidi control characters removed,
   lowercase, one space.
2. ``fold`` (from bot.textfold): diacritics removed and đ→d. Folding merges some words
   (nhắn/nhận → "nhan"); the matcher's bigrams and character n-grams recover most of that
   context, and members often type without diacritics anyway, so matching must not depend on
   them.
3. ``tokens``: syllables of the folded text, with chat abbreviations and synonyms rewritten to one
   canonical spelling (``SYNONYMS``; "mk" is taken as mật khẩu, never mình), greetings and
   politeness particles dropped, and English plurals and -ing/-ed endings stripped.

It produces matching keys only: never show folded text to a member.
"""

from __future__ import annotations

import re
from typing import Literal

from bot.textfold import clean, fold, strip_marks

__all__ = ["FUNCTION_WORDS", "Lang", "clean", "detect_language", "fold", "syllables", "tokens"]

Lang = Literal["vi", "en"]

_WORD = re.compile(r"[^\W_]+")
_VI_MARKS = re.compile("[àáảãạăằắẳẵặâầấẩẫậèéẻẽẹêềếểễệìíỉĩịòóỏõọôồốổỗộơờớởỡợùúủũụưừứửữựỳýỷỹỵđ]")

# Written as members type them; keys and values are folded at import, so "đc" and "dc" are one key.
# Values are the canonical spelling used in the index. Multi-word keys are matched longest first.
_SYNONYM_SOURCE: dict[str, tuple[str, ...]] = {
    "mat khau": ("mk", "mật khẩu", "pass", "password", "passwork", "pw", "pwd", "mật mã"),
    "otp": ("mã otp", "otp", "mã xác thực", "mã xác nhận", "mã kích hoạt", "verification code"),
    "so dien thoai": ("sđt", "sdt", "số đt", "số dt", "phone number"),
    "dien thoai": ("điện thoại", "đt", "dt", "đth", "dth", "phone", "dthoai"),
    "dien thoai thong minh": ("smartphone", "smart phone", "điện thoại cảm ứng"),
    "dang vien": ("đảng viên", "đv", "dv", "đviên", "party member"),
    "chi bo": ("chi bộ", "cb"),
    "ung dung": ("ứng dụng", "app", "apps", "application", "phần mềm"),
    "khong": ("không", "ko", "k", "khong", "hok", "kg", "khg", "kh", "hem", "k0", "hk"),
    "duoc": ("được", "dc", "đc", "đươc", "dk", "đk"),
    "nhan": ("nhắn", "ns", "nhận"),
    "tai khoan": ("tài khoản", "tk", "account", "acc", "tkhoan"),
    "dang nhap": ("đăng nhập", "đn", "dn", "login", "log in", "sign in", "đăng nhặp"),
    "dang ky": ("đăng ký", "đăng kí", "dky", "đky", "register", "sign up"),
    "tin nhan": ("tin nhắn", "tn", "sms"),
    "cap nhat": ("cập nhật", "cập nhập", "update", "up date"),
    "cai": ("cài đặt", "install", "installed", "setup", "set up"),
    "tai": ("tải", "tải về", "download", "dowload", "down"),
    "chplay": ("ch play", "chplay", "google play", "play store", "cửa hàng play", "ch plays"),
    "appstore": ("app store", "appstore", "apple store"),
    "iphone": ("iphone", "ip", "ios", "ai phôn"),
    "sinh hoat": ("sinh hoạt", "sh", "họp", "cuộc họp", "meeting", "meetings"),
    "bi thu": ("bí thư", "secretary", "bthu"),
    "nghi quyet": ("nghị quyết", "nq", "resolution", "resolutions"),
    "can cuoc": ("căn cước", "cccd", "cmnd", "căn cước công dân", "citizen id"),
    "mang": ("mạng", "wifi", "wi fi", "3g", "4g", "5g", "internet", "network"),
    "song": ("sóng", "signal"),
    "quen": ("quên", "wen", "qen", "forgot", "forget", "forgotten"),
    "gi": ("gì", "j"),
    "nhu the nao": ("như thế nào", "ntn", "thế nào", "ra sao", "làm sao", "how"),
    "lam": ("làm", "lm"),
    "roi": ("rồi", "r", "rùi", "oy"),
    "cung": ("cũng", "cx", "cug"),
    "truoc": ("trước", "trc"),
    "nguoi": ("người", "ng"),
    "thoi gian": ("thời gian", "tg"),
    "voi": ("với", "vs"),
    "biet": ("biết", "bit", "bik", "bjt"),
    "dang": ("đang", "dag", "đag"),
    "mot": ("một", "1"),
    "hai": ("hai", "2"),
    "ba": ("ba", "3"),
}

# English words for the handbook's things, rewritten to the Vietnamese canonical tokens: an
# English question then also matches the Vietnamese phrasings, of which the base has more.
# Only words with one sense here; ambiguous ones ("new": mới/mời, "post": đăng/Đảng) stay English.
_ENGLISH_SOURCE: dict[str, tuple[str, ...]] = {
    "tai lieu": ("document", "documents", "doc", "docs", "paper", "papers", "materials"),
    "lich": ("schedule", "schedules", "calendar", "timetable"),
    "tin tuc": ("news",),
    "thong bao": ("notification", "notifications", "notify", "notified", "announcement"),
    "du bi": ("probationary", "probation"),
    "mien": ("exempt", "exempted", "exemption"),
    "cham": ("slow", "slowly", "laggy", "lagging"),
    "khoa": ("locked", "lock", "locks"),
    "kich hoat": ("activate", "activated", "activation"),
    "bieu quyet": ("vote", "votes", "voting", "ballot"),
    "vang mat": ("absent", "absence", "absences"),
    "ly do": ("reason", "reasons", "excuse"),
    "ho so": ("profile",),
    "sai": ("wrong", "incorrect", "mistake", "mistakes"),
    "chuyen": ("transfer", "transferred", "moved"),
    "cao tuoi": ("elderly", "senior", "seniors"),
    "thu vien": ("library",),
    "chi thi": ("directive", "directives"),
    "xoa": ("delete", "deleted", "erase"),
    "doi": ("change", "changed", "changing"),
    "tao": ("create", "created", "creating"),
    "nhac": ("remind", "reminder", "reminders", "reminded"),
    "bien ban": ("minutes",),
    "phien ban": ("version", "versions"),
    "man hinh": ("screen",),
    "chu": ("font", "fonts"),
    "cap nhat": ("upgrade", "upgraded"),
    "dien thoai": ("mobile", "cellphone", "cell phone", "handset"),
    "iphone": ("apple", "apple phone"),
    "android": ("samsung", "oppo", "xiaomi", "vivo", "galaxy", "realme"),
    "khong tim thay": ("not found",),
    "lien he": ("contact",),
    "nhan": ("receive", "received", "receiving"),
    "bo nho": ("storage", "memory"),
    "tham du": ("attend", "attending"),
    "giay moi": ("invitation", "invitations", "invite"),
    "chi bo": ("cell",),
    "so tay": ("handbook",),
    "otp": ("code", "sms code", "codes"),
}

# Greetings and thanks: dropped, so "xin chào" or "cảm ơn nhé" alone is not a question.
_DROPPED_PHRASES: tuple[str, ...] = (
    "xin chào",
    "chào",
    "cảm ơn",
    "cám ơn",
    "hello",
    "hi",
    "thanks",
    "thank you",
    "please",
)


def _wordset(words: str) -> frozenset[str]:
    return frozenset(words.split())


# Politeness particles and pronouns that carry no topic. English function words are left to
# IDF weighting: in a short question ("who are you") they are the question.
_PARTICLES = _wordset("a ah ak oi nhe nha nhi ha ad admin em e anh toi minh t tui vay z ta dum")

_COMMON_VI = _wordset(
    "toi em anh chi ong ba co khong duoc la gi nao sao the lam roi cua cho voi va ma thi "
    "bi da dang se con nhu nay do o dau khi nhung cac mot hai hoi giup xin nhe nha a oi "
    "vay ve len xuong vao ra di den tai mat khau nhan so dien thoai dang vien bo hop "
    "sinh hoat ung dung tai khoan nhap quen doi moi cu cai dat tim thay bao loi xem tin lich "
    "lieu van ban hoai mai luon ko dc k mk sdt dt tk dv cb dn ns j ntn vs r"
)

_COMMON_EN = _wordset(
    "the a an is are am i my me you your to of in on for it how what where when why who which "
    "can cannot can't do does did not no yes please with from this that there have has get got "
    "should would will be been was were phone app password code meeting meetings member cell "
    "account login log forgot change changed new old number install update document documents "
    "help use using see find read send receive received"
)


FUNCTION_WORDS = _wordset(
    # Vietnamese (folded): pronouns, kin terms that set a story's scene, particles, conjunctions,
    # prepositions, tense and degree words, question words, numbers, time words, and the
    # general verbs every question has (do, know, ask, see, press, help, use).
    "toi tao minh em anh chi ong ba bac chu co cau ban no ho chung ta ai gi nao sao the vay "
    "a ah oi nhe nha nhi ha hi day do kia nay ay la thi ma va voi vs cua cho de o tai tu den "
    "tren duoi trong ngoai ra vao len xuong lai nua roi da dang se sap vua moi con van cung deu "
    "chi rat qua lam hon nhat it nhieu cac nhung mot hai bon nam sau bay tam chin muoi may bao "
    "lau khi luc gio hom ngay thang tuan sang chieu truoc nen phai can muon duoc bi khong chua "
    "chang dau biet hoi noi nghe thay xem di ve mo bam go giup nho cach kieu nhu hay hoac neu "
    "vi tuy het xong thu chut ca tung nguoi viec cai chiec me bo chau vo chong trai gai nha "
    "dong dung ok oke vang da u uh nhi thoi luon kiem hien dua nhan ghi tu theo ben tiep gan "
    "vai chac kip suot than khac nhanh ro hieu bang thuong lan buoi s tre cuoi "
    # English function words and general verbs.
    "i me my you your we our he she they them it its the a an to of in on at for from by with "
    "about is are am was were be been do does did done have has had can could should would will "
    "shall may might must how what where when why who which whom whose this that these those "
    "there here and or but if so not no yes please just still again now get got keep make let "
    "any some all every one thing way tell know ask say help use see as more really around "
    "inside him her people year up work"
)
"""Words that never name a topic, whatever their IDF over the entries: the coverage gate
(``bot.faq.matcher``) ignores them when it asks whether an entry covers a question's key words.
The entries' phrasings are short, so such words are rare in them and would look informative."""


def syllables(text: str) -> list[str]:
    """Folded syllables (and words of any script), punctuation dropped."""
    return _WORD.findall(fold(text))


def _key(phrase: str) -> tuple[str, ...]:
    return tuple(_WORD.findall(strip_marks(phrase.lower())))


def _build_synonyms() -> dict[tuple[str, ...], tuple[str, ...]]:
    table: dict[tuple[str, ...], tuple[str, ...]] = {}
    for canonical, variants in (*_SYNONYM_SOURCE.items(), *_ENGLISH_SOURCE.items()):
        target = tuple(canonical.split())
        for variant in (canonical, *variants):
            table[_key(variant)] = target
    for phrase in _DROPPED_PHRASES:
        table[_key(phrase)] = ()
    return table


SYNONYMS: dict[tuple[str, ...], tuple[str, ...]] = _build_synonyms()
_MAX_KEY = max(len(key) for key in SYNONYMS)


def _stem(word: str) -> str:
    """Strip English plural and verb endings; folded Vietnamese syllables never end so."""
    for suffix, min_len in (("ing", 6), ("ed", 5), ("s", 5)):
        if len(word) >= min_len and word.endswith(suffix) and not word.endswith("ss"):
            return word[: -len(suffix)]
    return word


def canonicalise(words: list[str]) -> list[str]:
    """Rewrite abbreviations and synonyms (longest match first), stem, drop particles."""
    out: list[str] = []
    i = 0
    while i < len(words):
        for size in range(min(_MAX_KEY, len(words) - i), 0, -1):
            target = SYNONYMS.get(tuple(words[i : i + size]))
            if target is not None:
                out.extend(target)
                i += size
                break
        else:
            if words[i] not in _PARTICLES:
                out.append(_stem(words[i]))
            i += 1
    return out


def tokens(text: str) -> list[str]:
    """Canonical matching tokens of ``text``: folded, abbreviations expanded, particles dropped."""
    return canonicalise(syllables(text))


def detect_language(text: str) -> Lang:
    """Rough guess: Vietnamese if it has Vietnamese letters or its syllables look Vietnamese."""
    cleaned = clean(text)
    if _VI_MARKS.search(cleaned):
        return "vi"
    words = _WORD.findall(strip_marks(cleaned))
    vi_hits = sum(word in _COMMON_VI for word in words)
    en_hits = sum(word in _COMMON_EN for word in words)
    return "en" if en_hits > vi_hits else "vi"
