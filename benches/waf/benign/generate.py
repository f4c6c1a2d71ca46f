#!/usr/bin/env python3
"""Generates benches/waf/benign/requests.jsonl: ordinary web traffic for measuring
WAF false positives (see SOURCE.md beside this file).

Natural-language text comes from documentation shipped in the Debian packages
installed on the generating machine (package descriptions, license texts,
copyright files, changelogs); everything else (names, addresses, user agents,
cookies, tokens) is synthesised here. The output is deterministic for a given
set of installed packages (fixed seed, sorted inputs) and is committed, so
the harness never reads this machine's packages.

    python3 benches/waf/benign/generate.py            # writes requests.jsonl
    python3 benches/waf/benign/generate.py --stats    # and prints where text came from
"""

import base64
import gzip
import hashlib
import json
import os
import random
import re
import sys
import uuid
from urllib.parse import quote, quote_plus

SEED = 20240514
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "requests.jsonl")

# How many requests of each kind.
COUNTS = {"search": 1100, "form": 950, "json": 950, "multipart": 150, "browse": 950}

rng = random.Random(SEED)


# ---------------------------------------------------------------------------
# Text lines from Debian documentation

def clean(line):
    line = "".join(ch for ch in line if ch == "\t" or ord(ch) >= 32)
    line = re.sub(r"\s+", " ", line).strip()
    return line


def usable(line):
    # Natural text: a few words, mostly letters. Nothing is filtered by content.
    if len(line) < 12 or len(line.split()) < 3:
        return False
    letters = sum(ch.isalpha() for ch in line)
    return letters >= 0.5 * len(line)


def dpkg_descriptions():
    lines = []
    try:
        with open("/var/lib/dpkg/status", encoding="utf-8", errors="replace") as f:
            in_desc = False
            for raw in f:
                if raw.startswith("Description:"):
                    in_desc = True
                    lines.append(raw[len("Description:"):])
                elif in_desc and raw.startswith(" "):
                    if raw.strip() != ".":
                        lines.append(raw)
                else:
                    in_desc = False
    except OSError:
        pass
    return lines


def license_lines():
    base = "/usr/share/common-licenses"
    lines = []
    if os.path.isdir(base):
        for name in sorted(os.listdir(base)):
            path = os.path.join(base, name)
            if os.path.isfile(path):
                with open(path, encoding="utf-8", errors="replace") as f:
                    lines.extend(f.read().splitlines())
    return lines


def doc_files(name):
    base = "/usr/share/doc"
    out = []
    if os.path.isdir(base):
        for pkg in sorted(os.listdir(base)):
            path = os.path.join(base, pkg, name)
            if os.path.isfile(path):
                out.append(path)
    return out


def copyright_lines():
    lines = []
    for path in doc_files("copyright"):
        with open(path, encoding="utf-8", errors="replace") as f:
            lines.extend(f.read().splitlines())
    return lines


def changelog_lines():
    lines = []
    for path in doc_files("changelog.Debian.gz"):
        try:
            with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
                text = f.read()
        except (OSError, EOFError):
            continue
        for raw in text.splitlines():
            # Entries are indented; skip the package/version headers and sign-offs.
            if not raw.startswith("  ") or raw.startswith(" -- "):
                continue
            line = raw.strip()
            line = re.sub(r"^[*+-] ", "", line)
            lines.append(line)
    return lines


SOURCES = {
    "dpkg-descriptions": (dpkg_descriptions, 0.35),
    "common-licenses": (license_lines, 0.15),
    "copyright-files": (copyright_lines, 0.25),
    "debian-changelogs": (changelog_lines, 0.25),
}

POOLS = {}
for src, (fn, _) in SOURCES.items():
    POOLS[src] = sorted({clean(l) for l in fn() if usable(clean(l))})
if not any(POOLS.values()):
    sys.exit("no Debian documentation found (/var/lib/dpkg/status, /usr/share/doc): "
             "run this on a Debian or Ubuntu system")
USED = {src: 0 for src in SOURCES}


def line():
    srcs = [s for s in SOURCES if POOLS[s]]
    src = rng.choices(srcs, weights=[SOURCES[s][1] for s in srcs])[0]
    USED[src] += 1
    return rng.choice(POOLS[src])


def words(lo, hi):
    """A run of lo..hi consecutive words of one line, as typed or pasted."""
    w = line().split()
    n = min(len(w), rng.randint(lo, hi))
    start = rng.randint(0, len(w) - n)
    return " ".join(w[start:start + n])


def query_text():
    r = rng.random()
    if r < 0.5:
        return words(1, 5)
    if r < 0.8:
        return words(5, 14)
    return line()[:200]


def paragraph(lines_lo=1, lines_hi=4, sep="\n"):
    return sep.join(line() for _ in range(rng.randint(lines_lo, lines_hi)))


def slug(text):
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return "-".join(s.split("-")[:8]) or "post"


# ---------------------------------------------------------------------------
# People, places, identifiers

FIRST = ["James", "Mary", "Olivia", "Liam", "Noah", "Emma", "Sophie", "Lukas", "Mia",
         "Jean-Luc", "Anne-Marie", "José", "María", "Zoë", "Chloé", "Søren", "Łukasz",
         "Ayşe", "Mehmet", "Priya", "Arjun", "Wei", "Yuki", "Hiroshi", "Fatima", "Omar",
         "Chinedu", "Amara", "Olga", "Dmitri", "Siobhan", "Niamh", "Björn", "François",
         "Ana", "João", "Giulia", "Matteo", "Kai", "Leilani", "Tom", "Sarah", "David",
         "Grace", "Daniel", "Hannah", "Ethan", "Isabella", "Lucas", "Amelia", "Selin"]
LAST = ["Smith", "Johnson", "O'Brien", "O'Connor", "D'Angelo", "D'Souza", "Müller",
        "Schmidt", "García", "Martínez", "Dubois", "Lefèvre", "Rossi", "Bianchi",
        "Nowak", "Kowalski", "Jensen", "Nielsen", "Andersson", "Yılmaz", "Patel",
        "Sharma", "Wang", "Li", "Tanaka", "Suzuki", "Okafor", "Mensah", "Ivanova",
        "Petrov", "McDonald", "MacLeod", "van der Berg", "de la Cruz", "Smith-Jones",
        "Nguyen", "Kim", "Park", "Silva", "Santos", "Ferreira", "Cohen", "Levi",
        "Brown", "Taylor", "Wilson", "Anderson", "Thomas", "Moore", "Jackson"]
MAIL_DOMAINS = ["gmail.com", "outlook.com", "yahoo.com", "proton.me", "icloud.com",
                "gmx.de", "web.de", "orange.fr", "example.org", "mail.example.com",
                "acme-corp.com", "university.edu", "fastmail.com", "hotmail.co.uk"]
STREETS = ["Baker Street", "High Street", "Main St", "Queen's Road", "Rue de l'Église",
           "Königstraße", "Calle Mayor", "Via Roma", "Elm Street", "Oak Avenue",
           "Maple Dr.", "Sunset Blvd", "Church Lane", "Station Road", "Avenue des Champs-Élysées",
           "Kurfürstendamm", "Market St", "Pine St, Suite 400", "Hauptstraße", "King's Parade"]
CITIES = [("London", "SW1A 1AA", "GB"), ("Paris", "75008", "FR"), ("Berlin", "10115", "DE"),
          ("München", "80331", "DE"), ("Madrid", "28013", "ES"), ("Roma", "00184", "IT"),
          ("San Francisco", "94103", "US"), ("New York", "10001", "US"), ("Austin", "78701", "US"),
          ("Toronto", "M5V 2T6", "CA"), ("Sydney", "2000", "AU"), ("Dublin", "D02 X285", "IE"),
          ("Kraków", "31-042", "PL"), ("Zürich", "8001", "CH"), ("Tokyo", "100-0005", "JP"),
          ("São Paulo", "01310-100", "BR"), ("Amsterdam", "1012 JS", "NL"), ("Oslo", "0150", "NO")]
COMPANIES = ["Acme Corp", "Globex", "Initech", "Umbrella Ltd.", "Stark & Sons",
             "Wayne Enterprises", "Müller GmbH", "Dupont & Fils", "Tyrell Corporation",
             "Soylent Co.", "Hooli", "Pied Piper, Inc.", "Vandelay Industries"]
PRODUCTS = ["Wireless Mouse", "USB-C Hub (7-in-1)", "Mechanical Keyboard", "27\" 4K Monitor",
            "Noise-Cancelling Headphones", "Laptop Stand", "Coffee Grinder", "Espresso Cups (set of 4)",
            "Running Shoes", "Rain Jacket", "Yoga Mat", "Water Bottle 750ml", "Desk Lamp",
            "Standing Desk", "Office Chair", "Backpack 30L", "Phone Case", "Screen Protector",
            "HDMI 2.1 Cable, 2m", "Paperback: The Pragmatic Programmer", "T-Shirt (M, navy)"]
COLORS = ["black", "white", "navy", "red", "forest-green", "sand", "grey"]


def name():
    return rng.choice(FIRST), rng.choice(LAST)


def ascii_fold(s):
    table = str.maketrans("éèêëáàâäíìîïóòôöúùûüçñøåæœšžłışğß", "eeeeaaaaiiiioooouuuucnoaaoszlisgs")
    return re.sub(r"[^a-z0-9.]", "", s.lower().translate(table))


def email(first, last):
    local = rng.choice([
        f"{ascii_fold(first)}.{ascii_fold(last)}",
        f"{ascii_fold(first)[0]}{ascii_fold(last)}",
        f"{ascii_fold(first)}{rng.randint(1, 99)}",
        f"{ascii_fold(first)}.{ascii_fold(last)}+{rng.choice(['shop', 'news', 'work'])}",
    ])
    return f"{local}@{rng.choice(MAIL_DOMAINS)}"


def phone():
    return rng.choice([
        f"+44 20 7946 {rng.randint(0, 9999):04d}",
        f"({rng.randint(200, 989)}) 555-{rng.randint(0, 9999):04d}",
        f"+1 {rng.randint(200, 989)}-555-{rng.randint(0, 9999):04d}",
        f"+49 30 {rng.randint(100000, 999999)}",
        f"+33 6 {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)}",
        f"0{rng.randint(100, 999)}.{rng.randint(100, 999)}.{rng.randint(1000, 9999)}",
    ])


def address():
    city, postcode, country = rng.choice(CITIES)
    street = f"{rng.randint(1, 250)} {rng.choice(STREETS)}"
    if rng.random() < 0.3:
        street = f"Apt. {rng.randint(1, 40)}, {street}"
    return {"line1": street, "city": city, "postcode": postcode, "country": country}


def password():
    words_ = ["correct", "horse", "battery", "staple", "Summer", "Winter", "sunshine",
              "dragon", "Monkey", "purple", "Coffee", "garden", "Tiger", "rocket"]
    r = rng.random()
    if r < 0.4:
        return f"{rng.choice(words_)}{rng.randint(1, 2025)}{rng.choice('!@#$%&*?')}"
    if r < 0.7:
        return "-".join(rng.choice(words_).lower() for _ in range(4))
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789!@#$%^&*"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(14, 24)))


def hexid(n):
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def b64url(raw):
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def rand_bytes(n):
    return bytes(rng.randrange(256) for _ in range(n))


def new_uuid():
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def iso_time():
    return (f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T"
            f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"
            f"{rng.choice(['Z', '.000Z', '+02:00', '.512Z'])}")


def jwt():
    header = {"alg": rng.choice(["HS256", "RS256", "ES256"]), "typ": "JWT"}
    if header["alg"] != "HS256":
        header["kid"] = hexid(16)
    first, last = name()
    claims = {"sub": str(rng.randint(1000, 999999)), "name": f"{first} {last}",
              "email": email(first, last), "iat": 1714000000 + rng.randint(0, 9000000),
              "exp": 1724000000 + rng.randint(0, 9000000),
              "scope": rng.choice(["read write", "openid profile email", "orders:read"]),
              "iss": "https://auth.example.com/", "aud": "api"}
    sig = rand_bytes(64 if header["alg"] == "ES256" else 32 if header["alg"] == "HS256" else 256)
    return ".".join([b64url(json.dumps(header, separators=(",", ":")).encode()),
                     b64url(json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode()),
                     b64url(sig)])


def csrf():
    return rng.choice([b64url(rand_bytes(32)), base64.b64encode(rand_bytes(32)).decode(), hexid(64)])


# ---------------------------------------------------------------------------
# Clients

CHROME_VERSIONS = ["124.0.0.0", "126.0.0.0", "128.0.0.0", "130.0.0.0", "131.0.0.0"]
FIREFOX_VERSIONS = ["125.0", "127.0", "128.0", "131.0", "133.0"]


def browser():
    """(name, headers for a top-level navigation, headers for fetch/XHR)."""
    kind = rng.choices(["chrome", "firefox", "safari", "edge", "ios", "android"],
                       weights=[40, 15, 12, 10, 13, 10])[0]
    lang = rng.choice(["en-US,en;q=0.9", "en-GB,en;q=0.9,en-US;q=0.8", "de-DE,de;q=0.9,en;q=0.8",
                       "fr-FR,fr;q=0.9,en-US;q=0.8,en;q=0.7", "es-ES,es;q=0.9", "ja,en-US;q=0.9,en;q=0.8",
                       "pt-BR,pt;q=0.9,en-US;q=0.8,en;q=0.7", "nl-NL,nl;q=0.9,en;q=0.8"])
    if kind in ("chrome", "edge", "android"):
        v = rng.choice(CHROME_VERSIONS)
        major = v.split(".")[0]
        if kind == "chrome":
            platform = rng.choice(['"Windows"', '"macOS"', '"Linux"'])
            os_part = {'"Windows"': "Windows NT 10.0; Win64; x64",
                       '"macOS"': "Macintosh; Intel Mac OS X 10_15_7",
                       '"Linux"': "X11; Linux x86_64"}[platform]
            ua = f"Mozilla/5.0 ({os_part}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v} Safari/537.36"
            brand = f'"Google Chrome";v="{major}", "Chromium";v="{major}", "Not_A Brand";v="24"'
            mobile = "?0"
        elif kind == "edge":
            platform = '"Windows"'
            ua = (f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                  f"Chrome/{v} Safari/537.36 Edg/{major}.0.2478.{rng.randint(50, 99)}")
            brand = f'"Microsoft Edge";v="{major}", "Chromium";v="{major}", "Not_A Brand";v="24"'
            mobile = "?0"
        else:
            platform = '"Android"'
            model = rng.choice(["Pixel 8", "SM-S918B", "Pixel 7a", "moto g(60)"])
            ua = (f"Mozilla/5.0 (Linux; Android 14; {model}) AppleWebKit/537.36 (KHTML, like Gecko) "
                  f"Chrome/{v} Mobile Safari/537.36")
            brand = f'"Google Chrome";v="{major}", "Chromium";v="{major}", "Not_A Brand";v="24"'
            mobile = "?1"
        ch = [("sec-ch-ua", brand), ("sec-ch-ua-mobile", mobile), ("sec-ch-ua-platform", platform)]
        nav = ch + [("Upgrade-Insecure-Requests", "1"), ("User-Agent", ua),
                    ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,"
                               "image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"),
                    ("Sec-Fetch-Site", rng.choice(["none", "same-origin", "cross-site"])),
                    ("Sec-Fetch-Mode", "navigate"), ("Sec-Fetch-User", "?1"), ("Sec-Fetch-Dest", "document"),
                    ("Accept-Encoding", rng.choice(["gzip, deflate, br, zstd", "gzip, deflate, br"])),
                    ("Accept-Language", lang)]
        xhr = ch + [("User-Agent", ua), ("Accept", "application/json, text/plain, */*"),
                    ("Sec-Fetch-Site", "same-origin"), ("Sec-Fetch-Mode", "cors"), ("Sec-Fetch-Dest", "empty"),
                    ("Accept-Encoding", "gzip, deflate, br, zstd"), ("Accept-Language", lang)]
        return kind, nav, xhr
    if kind == "firefox":
        v = rng.choice(FIREFOX_VERSIONS)
        os_part = rng.choice(["Windows NT 10.0; Win64; x64", "X11; Linux x86_64", "X11; Ubuntu; Linux x86_64",
                              "Macintosh; Intel Mac OS X 10.15"])
        ua = f"Mozilla/5.0 ({os_part}; rv:{v}) Gecko/20100101 Firefox/{v}"
        nav = [("User-Agent", ua),
               ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"),
               ("Accept-Language", lang), ("Accept-Encoding", "gzip, deflate, br, zstd"),
               ("DNT", "1") if rng.random() < 0.3 else ("Sec-GPC", "1"),
               ("Connection", "keep-alive"), ("Upgrade-Insecure-Requests", "1"),
               ("Sec-Fetch-Dest", "document"), ("Sec-Fetch-Mode", "navigate"),
               ("Sec-Fetch-Site", rng.choice(["none", "same-origin"])), ("Sec-Fetch-User", "?1"),
               ("Priority", "u=0, i")]
        xhr = [("User-Agent", ua), ("Accept", "application/json"), ("Accept-Language", lang),
               ("Accept-Encoding", "gzip, deflate, br, zstd"), ("Connection", "keep-alive"),
               ("Sec-Fetch-Dest", "empty"), ("Sec-Fetch-Mode", "cors"), ("Sec-Fetch-Site", "same-origin")]
        return kind, nav, xhr
    if kind == "safari":
        ua = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
              f"Version/{rng.choice(['17.4.1', '17.5', '18.0', '18.1'])} Safari/605.1.15")
    else:
        ios = rng.choice(["17_4_1", "17_5", "18_0", "18_1"])
        ua = (f"Mozilla/5.0 (iPhone; CPU iPhone OS {ios} like Mac OS X) AppleWebKit/605.1.15 "
              f"(KHTML, like Gecko) Version/{ios.split('_')[0]}.{ios.split('_')[1]} Mobile/15E148 Safari/604.1")
    nav = [("Sec-Fetch-Dest", "document"), ("User-Agent", ua),
           ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
           ("Sec-Fetch-Site", rng.choice(["none", "same-origin"])), ("Sec-Fetch-Mode", "navigate"),
           ("Accept-Language", lang.split(",")[0]), ("Accept-Encoding", "gzip, deflate, br"),
           ("Connection", "keep-alive")]
    xhr = [("Accept", "*/*"), ("Sec-Fetch-Site", "same-origin"), ("Sec-Fetch-Mode", "cors"),
           ("User-Agent", ua), ("Accept-Language", lang.split(",")[0]), ("Sec-Fetch-Dest", "empty"),
           ("Accept-Encoding", "gzip, deflate, br")]
    return kind, nav, xhr


def api_client():
    return rng.choice([
        [("User-Agent", f"curl/8.{rng.choice(['5.0', '7.1', '9.1', '11.0'])}"), ("Accept", "*/*")],
        [("User-Agent", f"python-requests/2.{rng.choice(['31.0', '32.3'])}"),
         ("Accept-Encoding", "gzip, deflate"), ("Accept", "*/*"), ("Connection", "keep-alive")],
        [("User-Agent", "okhttp/4.12.0"), ("Accept-Encoding", "gzip")],
        [("User-Agent", "Go-http-client/1.1"), ("Accept-Encoding", "gzip")],
        [("User-Agent", "axios/1.7.2"), ("Accept", "application/json, text/plain, */*"),
         ("Accept-Encoding", "gzip, compress, deflate, br")],
        [("User-Agent", "Dart/3.4 (dart:io)"), ("Accept-Encoding", "gzip")],
        [("User-Agent", "MyShopApp/5.2.1 (iPhone; iOS 17.5; Scale/3.00)"), ("Accept", "application/json"),
         ("Accept-Language", "en-US;q=1, de-US;q=0.9")],
    ])


def cookies():
    jar = []
    if rng.random() < 0.7:
        jar.append(f"_ga=GA1.1.{rng.randint(100000000, 2147483647)}.{rng.randint(1690000000, 1730000000)}")
    if rng.random() < 0.4:
        jar.append(f"_ga_{''.join(rng.choice('ABCDEFGHJKLMNPQRSTUVWXYZ0123456789') for _ in range(10))}="
                   f"GS1.1.{rng.randint(1700000000, 1730000000)}.{rng.randint(1, 40)}.1."
                   f"{rng.randint(1700000000, 1730000000)}.0.0.0")
    if rng.random() < 0.3:
        jar.append(f"_gid=GA1.2.{rng.randint(100000000, 2147483647)}.{rng.randint(1720000000, 1730000000)}")
    if rng.random() < 0.2:
        jar.append(f"_fbp=fb.1.{rng.randint(1700000000000, 1730000000000)}.{rng.randint(100000000, 999999999)}")
    r = rng.random()
    if r < 0.15:
        # Cookiebot
        jar.append("CookieConsent={stamp:%27" + b64url(rand_bytes(36)) + "%27%2Cnecessary:true%2C"
                   "preferences:" + rng.choice(["true", "false"]) + "%2Cstatistics:true%2Cmarketing:"
                   + rng.choice(["true", "false"]) + "%2Cmethod:%27explicit%27%2Cver:1%2Cutc:"
                   + str(rng.randint(1700000000000, 1730000000000)) + "%2Cregion:%27de%27}")
    elif r < 0.3:
        # OneTrust
        jar.append("OptanonConsent=isGpcEnabled=0&datestamp=Tue+May+14+2024+10%3A21%3A33+GMT%2B0200+"
                   "(Central+European+Summer+Time)&version=202402.1.0&browserGpcFlag=0&isIABGlobal=false"
                   f"&hosts=&consentId={new_uuid()}&interactionCount=1&isAnonUser=1&landingPath="
                   "NotLandingPage&groups=C0001%3A1%2CC0002%3A" + rng.choice("01") + "%2CC0003%3A1%2CC0004%3A0")
        jar.append("OptanonAlertBoxClosed=" + iso_time())
    elif r < 0.42:
        # cookieconsent (JSON, URL-encoded by the library)
        consent = {"categories": ["necessary"] + rng.sample(["analytics", "marketing", "preferences"], 1),
                   "revision": 0, "data": None, "consentTimestamp": iso_time(),
                   "consentId": new_uuid(), "lastConsentTimestamp": iso_time()}
        jar.append("cc_cookie=" + quote(json.dumps(consent, separators=(",", ":")), safe=""))
    elif r < 0.5:
        jar.append("cookie_consent=" + rng.choice(["accepted", "necessary", "all", "1"]))
    s = rng.random()
    if s < 0.25:
        jar.append(f"sessionid={''.join(rng.choice('abcdefghijklmnopqrstuvwxyz0123456789') for _ in range(32))}")
    elif s < 0.4:
        jar.append(f"PHPSESSID={''.join(rng.choice('abcdefghijklmnopqrstuv0123456789') for _ in range(26))}")
    elif s < 0.5:
        jar.append(f"JSESSIONID={hexid(32).upper()}")
    elif s < 0.6:
        # Flask signed session (base64 JSON, timestamp, signature)
        payload = b64url(json.dumps({"_permanent": True, "user_id": rng.randint(1, 99999)},
                                    separators=(",", ":")).encode())
        jar.append(f"session={payload}.{b64url(rand_bytes(4))}.{b64url(rand_bytes(20))}")
    elif s < 0.7:
        # Rails cookie store (base64 of encrypted data + IV + auth tag, URL-encoded)
        parts = [base64.b64encode(rand_bytes(n)).decode() for n in (rng.randint(60, 200), 12, 16)]
        jar.append("_myapp_session=" + quote("--".join(parts), safe=""))
    elif s < 0.78:
        jar.append(f"connect.sid={quote('s:' + b64url(rand_bytes(24)) + '.' + b64url(rand_bytes(32)), safe='')}")
    if rng.random() < 0.2:
        jar.append(f"csrftoken={b64url(rand_bytes(24))}")
    if rng.random() < 0.15:
        jar.append(rng.choice(["theme=dark", "lang=en", "locale=de_DE", "currency=EUR", "tz=Europe%2FBerlin",
                               "sidebar_collapsed=false", "recently_viewed=1042%2C877%2C12"]))
    rng.shuffle(jar)
    return "; ".join(jar)


def with_common(headers, referer_path=None, cookie=True):
    """Host first (as browsers send it), then the client's headers, with
    Referer and Cookie where a browser would add them."""
    out = [("Host", "localhost")] + list(headers)
    if referer_path is not None:
        out.append(("Referer", f"http://localhost{referer_path}"))
    if cookie:
        c = cookies()
        if c:
            out.append(("Cookie", c))
    return out


# ---------------------------------------------------------------------------
# Request kinds

def form_encode(pairs):
    return "&".join(f"{quote_plus(k, safe='*')}={quote_plus(str(v), safe='*')}" for k, v in pairs)


def req(kind, method, uri, headers, body=None, body_encoding=None):
    r = {"method": method, "uri": uri, "headers": [[k, v] for k, v in headers], "body": body, "kind": kind}
    if body_encoding:
        r["body_encoding"] = body_encoding
    return r


def search():
    q = query_text()
    path, param, extra = rng.choice([
        ("/search", "q", []), ("/search", "q", [("page", str(rng.randint(2, 9)))]),
        ("/products", "query", [("sort", rng.choice(["relevance", "price_asc", "-rating"]))]),
        ("/wiki/Special:Search", "search", [("title", "Special:Search"), ("go", "Go")]),
        ("/wiki/index.php", "search", [("title", "Special:Search"), ("fulltext", "1")]),
        ("/api/search", "q", [("limit", "20"), ("offset", str(20 * rng.randint(0, 5)))]),
        ("/docs/search", "term", [("lang", rng.choice(["en", "de", "fr"]))]),
        ("/forum/search", "keywords", [("sf", "all"), ("sr", "posts")]),
        ("/shop/catalogsearch/result/", "q", []),
        ("/", "s", []),
    ])
    if rng.random() < 0.2:
        extra.append(("utm_source", rng.choice(["google", "newsletter", "twitter"])))
    rng.shuffle(extra)
    pairs = [(param, q)] + extra
    uri = f"{path}?{form_encode(pairs)}"
    if path == "/api/search":
        _, _, xhr = browser()
        headers = with_common(xhr, referer_path="/search")
    else:
        _, nav, _ = browser()
        headers = with_common(nav, referer_path=rng.choice([None, "/", path]))
    return req("search", "GET", uri, headers)


def form():
    _, nav, _ = browser()
    first, last = name()
    kind = rng.choice(["contact", "comment", "signup", "login", "checkout", "newsletter",
                       "profile", "reset", "review", "support"])
    if kind == "contact":
        path = "/contact"
        pairs = [("name", f"{first} {last}"), ("email", email(first, last)),
                 ("phone", phone()) if rng.random() < 0.5 else ("company", rng.choice(COMPANIES)),
                 ("subject", words(3, 9)), ("message", paragraph(1, 4, "\r\n")),
                 ("csrfmiddlewaretoken", csrf())]
    elif kind == "comment":
        path = "/wp-comments-post.php"
        pairs = [("comment", paragraph(1, 3, "\r\n")), ("author", f"{first} {last}"),
                 ("email", email(first, last)),
                 ("url", rng.choice(["", f"https://{ascii_fold(first)}{ascii_fold(last)}.dev",
                                     f"https://www.{ascii_fold(last)}.example.org/blog/"])),
                 ("submit", "Post Comment"), ("comment_post_ID", str(rng.randint(10, 9000))),
                 ("comment_parent", rng.choice(["0", str(rng.randint(100, 5000))]))]
    elif kind == "signup":
        path = rng.choice(["/signup", "/users", "/register", "/accounts/signup/"])
        pw = password()
        pairs = [("utf8", "✓"), ("authenticity_token", csrf()),
                 ("user[first_name]", first), ("user[last_name]", last),
                 ("user[email]", email(first, last)), ("user[password]", pw),
                 ("user[password_confirmation]", pw), ("user[date_of_birth]",
                 f"{rng.randint(1950, 2005)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"),
                 ("user[terms]", "1"), ("user[newsletter]", rng.choice(["0", "1"])), ("commit", "Create account")]
    elif kind == "login":
        path = rng.choice(["/login", "/session", "/wp-login.php", "/accounts/login/?next=/dashboard/"])
        pairs = [("username" if rng.random() < 0.5 else "email",
                  rng.choice([email(first, last), ascii_fold(first) + str(rng.randint(1, 999))])),
                 ("password", password()), ("remember", "on"), ("csrf_token", csrf())]
        if path == "/wp-login.php":
            pairs = [("log", ascii_fold(first)), ("pwd", password()), ("rememberme", "forever"),
                     ("wp-submit", "Log In"), ("redirect_to", "http://localhost/wp-admin/"), ("testcookie", "1")]
    elif kind == "checkout":
        path = "/checkout"
        addr = address()
        pairs = [("email", email(first, last)), ("shipping[first_name]", first), ("shipping[last_name]", last),
                 ("shipping[address1]", addr["line1"]), ("shipping[city]", addr["city"]),
                 ("shipping[zip]", addr["postcode"]), ("shipping[country]", addr["country"]),
                 ("shipping[phone]", phone()), ("shipping_method", rng.choice(["standard", "express", "pickup"])),
                 ("coupon", rng.choice(["", "SPRING24", "WELCOME10", "FREESHIP"])),
                 ("note", rng.choice(["", words(4, 14), "Please leave the parcel at the back door, thanks!"])),
                 ("items[0][sku]", f"SKU-{rng.randint(10000, 99999)}"), ("items[0][qty]", str(rng.randint(1, 3))),
                 ("items[1][sku]", f"SKU-{rng.randint(10000, 99999)}"), ("items[1][qty]", "1"),
                 ("terms", "on"), ("_token", csrf())]
    elif kind == "newsletter":
        path = "/newsletter/subscribe"
        pairs = [("EMAIL", email(first, last)), ("FNAME", first), ("LNAME", last),
                 ("group[1234][1]", "1"), ("b_" + hexid(25) + "_" + hexid(10), "")]
    elif kind == "profile":
        path = "/account/profile"
        addr = address()
        pairs = [("_method", "patch"), ("display_name", f"{first} {last[0]}."), ("bio", paragraph(1, 2, "\r\n")),
                 ("website", f"https://github.com/{ascii_fold(first)}{ascii_fold(last)}"),
                 ("location", f"{addr['city']}, {addr['country']}"), ("timezone", rng.choice(
                     ["Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC"])),
                 ("notifications[email]", "1"), ("notifications[sms]", "0")]
    elif kind == "reset":
        path = "/password/reset"
        pairs = [("email", email(first, last)), ("g-recaptcha-response", b64url(rand_bytes(rng.randint(300, 500))))]
    elif kind == "review":
        path = f"/products/{rng.randint(100, 9999)}/reviews"
        pairs = [("rating", str(rng.randint(1, 5))), ("title", words(2, 7)),
                 ("body", paragraph(1, 3, "\r\n")), ("name", f"{first} {last[0]}."), ("recommend", rng.choice(["yes", "no"]))]
    else:
        path = "/support/tickets"
        pairs = [("ticket[subject]", words(3, 10)), ("ticket[priority]", rng.choice(["low", "normal", "high"])),
                 ("ticket[description]", paragraph(2, 5, "\r\n")), ("ticket[order_number]",
                 f"#{rng.randint(100000, 999999)}"), ("ticket[email]", email(first, last))]
    body = form_encode(pairs)
    ctype = "application/x-www-form-urlencoded"
    if rng.random() < 0.1:
        ctype += "; charset=UTF-8"
    headers = with_common(
        [h for h in nav if h[0] not in ("Sec-Fetch-Site",)] +
        [("Content-Type", ctype), ("Origin", "http://localhost"), ("Sec-Fetch-Site", "same-origin")],
        referer_path=path.split("?")[0])
    return req("form", "POST", path, headers, body)


def markdown():
    parts = [f"## {words(2, 6)}", "", line(), "", f"- {words(3, 10)}", f"- {words(3, 10)}",
             f"- `{rng.choice(['npm install', 'pip install', 'apt-get install', 'cargo add'])} {slug(words(1, 2))}`",
             "", f"See [the docs](https://docs.example.com/{slug(words(1, 3))}) for details."]
    return "\n".join(parts)


def line_items():
    items = []
    for _ in range(rng.randint(1, 4)):
        items.append({"sku": f"SKU-{rng.randint(10000, 99999)}", "name": rng.choice(PRODUCTS),
                      "quantity": rng.randint(1, 5), "unit_price": round(rng.uniform(2, 400), 2),
                      "currency": rng.choice(["EUR", "USD", "GBP"]),
                      "options": {"color": rng.choice(COLORS)} if rng.random() < 0.4 else None,
                      "gift": rng.random() < 0.1})
    return items


def json_api():
    _, _, xhr = browser()
    use_client = rng.random() < 0.35
    base = api_client() if use_client else xhr
    first, last = name()
    kind = rng.choice(["user", "order", "address", "product", "graphql", "graphql", "patch", "put",
                       "delete", "event", "comment", "settings"])
    method = "POST"
    if kind == "user":
        path = "/api/v1/users"
        body = {"first_name": first, "last_name": last, "email": email(first, last), "password": password(),
                "phone": phone(), "locale": rng.choice(["en-US", "de-DE", "fr-FR"]), "marketing_opt_in": rng.random() < 0.5,
                "address": address(), "referral_code": None}
    elif kind == "order":
        path = "/api/v1/orders"
        body = {"id": new_uuid(), "customer": {"id": rng.randint(1, 99999), "email": email(first, last),
                                               "name": f"{first} {last}"},
                "items": line_items(), "shipping_address": address(), "billing_same_as_shipping": True,
                "notes": rng.choice([None, words(3, 15)]), "created_at": iso_time(),
                "payment": {"method": rng.choice(["card", "paypal", "sepa"]), "token": "tok_" + b64url(rand_bytes(18))}}
    elif kind == "address":
        path = f"/api/v1/users/{rng.randint(1, 99999)}/addresses"
        body = dict(address(), label=rng.choice(["Home", "Work", "Mum's place"]), is_default=rng.random() < 0.5,
                    recipient=f"{first} {last}")
    elif kind == "product":
        path = "/api/admin/products"
        body = {"title": rng.choice(PRODUCTS), "slug": slug(words(2, 5)), "description_md": markdown(),
                "price": {"amount": rng.randint(199, 99999), "currency": "EUR"},
                "tags": [slug(words(1, 2)) for _ in range(rng.randint(1, 4))], "published": rng.random() < 0.7,
                "images": [{"url": f"https://cdn.example.com/img/{hexid(12)}.jpg", "alt": words(2, 6)}],
                "thumbnail_base64": base64.b64encode(rand_bytes(rng.randint(48, 240))).decode(),
                "dimensions": {"w": rng.randint(5, 80), "h": rng.randint(5, 80), "unit": "cm"},
                "updated_at": iso_time()}
    elif kind == "graphql":
        path = "/graphql"
        body = rng.choice([
            {"query": "query { user(id: %d) { name email } }" % rng.randint(1, 999)},
            {"operationName": "GetProduct", "query": "query GetProduct($id: ID!) {\n  product(id: $id) {\n"
             "    id\n    title\n    price { amount currency }\n    reviews(first: 5) { edges { node { rating body } } }\n  }\n}",
             "variables": {"id": str(rng.randint(1, 99999))}},
            {"operationName": "Search", "query": "query Search($q: String!, $after: String) {\n  search(query: $q, "
             "first: 20, after: $after) {\n    nodes { ... on Article { title url } ... on User { login } }\n"
             "    pageInfo { hasNextPage endCursor }\n  }\n}", "variables": {"q": query_text(), "after": None}},
            {"operationName": "AddComment", "query": "mutation AddComment($input: AddCommentInput!) {\n"
             "  addComment(input: $input) { comment { id createdAt } errors { field message } }\n}",
             "variables": {"input": {"subjectId": b64url(rand_bytes(12)), "body": paragraph(1, 3)}}},
            {"operationName": "UpdateCart", "query": "mutation UpdateCart($lines: [CartLineInput!]!) {\n"
             "  cartLinesUpdate(lines: $lines) { cart { id totalQuantity } }\n}",
             "variables": {"lines": [{"id": f"gid://shop/CartLine/{new_uuid()}", "quantity": rng.randint(0, 4)}]}},
        ])
    elif kind == "patch":
        method = "PATCH"
        path = f"/api/v1/orders/{new_uuid()}"
        body = rng.choice([{"status": rng.choice(["shipped", "cancelled", "delivered"]), "tracking_number":
                            f"1Z{hexid(16).upper()}", "carrier": rng.choice(["UPS", "DHL", "La Poste"])},
                           {"notes": words(3, 20)}, {"shipping_address": {"line1": address()["line1"]}},
                           [{"op": "replace", "path": "/email", "value": email(first, last)},
                            {"op": "add", "path": "/tags/-", "value": slug(words(1, 2))}]])
    elif kind == "put":
        method = "PUT"
        path = f"/api/v1/users/{rng.randint(1, 99999)}/preferences"
        body = {"theme": rng.choice(["dark", "light", "system"]), "language": rng.choice(["en", "de", "ja"]),
                "email_notifications": {"orders": True, "marketing": False, "digest": rng.choice(["daily", "weekly", None])},
                "dashboard": {"widgets": ["orders", "revenue", "top-products"], "range_days": 30}}
    elif kind == "delete":
        method = "DELETE"
        path = rng.choice([f"/api/v1/cart/items/{rng.randint(1, 9999)}", f"/api/v1/sessions/{new_uuid()}",
                           f"/api/v2/files/{hexid(24)}"])
        body = rng.choice([None, {"reason": words(2, 8)}])
    elif kind == "event":
        path = "/api/collect"
        body = {"events": [{"name": rng.choice(["page_view", "add_to_cart", "scroll", "click"]),
                            "ts": 1714000000000 + rng.randint(0, 9000000000),
                            "props": {"path": f"/blog/{slug(words(2, 6))}", "title": words(3, 9),
                                      "referrer": rng.choice(["", "https://www.google.com/", "https://t.co/" + b64url(rand_bytes(7))]),
                                      "viewport": "1440x900", "scroll_depth": rng.choice([25, 50, 75, 100])}}
                           for _ in range(rng.randint(1, 3))], "anonymous_id": new_uuid(), "sent_at": iso_time()}
    elif kind == "comment":
        path = f"/api/v1/posts/{rng.randint(1, 5000)}/comments"
        body = {"body": paragraph(1, 3), "parent_id": rng.choice([None, rng.randint(1, 99999)]),
                "author": {"name": f"{first} {last}", "avatar_url": f"https://www.gravatar.com/avatar/{hexid(32)}?s=80&d=identicon"}}
    else:
        method = rng.choice(["PUT", "PATCH"])
        path = "/api/v1/me/settings"
        body = {"display_name": f"{first} {last}", "bio": line(), "website": f"https://{ascii_fold(last)}.example.net",
                "two_factor_enabled": rng.random() < 0.5, "sessions_timeout_minutes": rng.choice([15, 30, 60, 1440])}
    headers = list(base)
    if body is not None:
        headers.append(("Content-Type", rng.choice(["application/json", "application/json",
                                                     "application/json; charset=utf-8"])))
    if rng.random() < 0.7:
        headers.append(("Authorization", f"Bearer {jwt()}"))
    if not use_client:
        headers += [("Origin", "http://localhost"), ("X-Requested-With", "XMLHttpRequest")] if rng.random() < 0.3 \
            else [("Origin", "http://localhost")]
        if rng.random() < 0.4:
            headers.append(("X-CSRF-Token", csrf()))
    if rng.random() < 0.2:
        headers.append(("X-Request-ID", new_uuid()))
    if rng.random() < 0.15:
        headers.append(("Idempotency-Key", new_uuid()))
    text = None if body is None else json.dumps(body, ensure_ascii=rng.random() < 0.3,
                                                separators=(",", ":") if rng.random() < 0.7 else None)
    headers = with_common(headers, referer_path=None if use_client else "/app", cookie=not use_client)
    return req("json", method, path, headers, text)


def png_bytes():
    sig = b"\x89PNG\r\n\x1a\n"
    ihdr = b"\x00\x00\x00\rIHDR" + rng.randint(1, 64).to_bytes(4, "big") + rng.randint(1, 64).to_bytes(4, "big") \
        + b"\x08\x06\x00\x00\x00" + rand_bytes(4)
    idat_data = rand_bytes(rng.randint(60, 400))
    idat = len(idat_data).to_bytes(4, "big") + b"IDAT" + idat_data + rand_bytes(4)
    return sig + ihdr + idat + b"\x00\x00\x00\x00IEND\xaeB`\x82"


def multipart():
    kind, nav, _ = browser()
    if kind == "firefox":
        boundary = "-" * 27 + "".join(rng.choice("0123456789") for _ in range(29))
    else:
        boundary = "----WebKitFormBoundary" + "".join(
            rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") for _ in range(16))
    parts = []

    def field(n, v):
        parts.append(f'Content-Disposition: form-data; name="{n}"\r\n\r\n'.encode() + v.encode())

    def file(n, filename, ctype, data):
        parts.append(f'Content-Disposition: form-data; name="{n}"; filename="{filename}"\r\n'
                     f"Content-Type: {ctype}\r\n\r\n".encode() + data)

    first, last = name()
    choice = rng.choice(["avatar", "attachment", "document", "gallery"])
    path = {"avatar": "/account/avatar", "attachment": "/support/tickets", "document": "/documents/upload",
            "gallery": "/api/v1/media"}[choice]
    field("authenticity_token", csrf())
    if choice == "avatar":
        file("avatar", rng.choice(["me.png", "profile-photo.png", "IMG_2041.png"]), "image/png", png_bytes())
        field("display_name", f"{first} {last}")
    elif choice == "attachment":
        field("subject", words(3, 10))
        field("description", paragraph(1, 4, "\r\n"))
        file("attachment", rng.choice(["error-log.txt", "notes.txt", "steps to reproduce.txt"]), "text/plain",
             paragraph(3, 10, "\n").encode())
    elif choice == "document":
        field("title", words(2, 8))
        field("folder_id", str(rng.randint(1, 500)))
        file("file", rng.choice(["LICENSE.txt", "README.md", "changelog.txt"]),
             rng.choice(["text/plain", "text/markdown"]), (markdown() + "\n\n" + paragraph(3, 8, "\n")).encode())
        field("visibility", rng.choice(["private", "team", "public"]))
    else:
        field("caption", words(3, 12))
        for i in range(rng.randint(1, 3)):
            file("files[]", f"photo-{i + 1}.png", "image/png", png_bytes())
        field("album", slug(words(1, 3)))
    body = b"".join(b"--" + boundary.encode() + b"\r\n" + p + b"\r\n" for p in parts) + b"--" + boundary.encode() + b"--\r\n"
    headers = with_common(
        [h for h in nav if h[0] != "Sec-Fetch-Site"] +
        [("Content-Type", f"multipart/form-data; boundary={boundary}"), ("Origin", "http://localhost"),
         ("Sec-Fetch-Site", "same-origin")], referer_path=path)
    try:
        return req("multipart", "POST", path, headers, body.decode("utf-8"))
    except UnicodeDecodeError:
        return req("multipart", "POST", path, headers, base64.b64encode(body).decode(), "base64")


def browse():
    kind, nav, xhr = browser()
    r = rng.random()
    title = words(3, 9)
    if r < 0.35:
        path = rng.choice([
            "/", "/about", "/pricing", "/contact", "/careers", f"/blog/2024/{rng.randint(1, 12):02d}/{slug(title)}",
            f"/blog/{slug(title)}", f"/docs/{slug(words(1, 3))}/{slug(words(1, 3))}", f"/en-US/docs/{slug(words(1, 2))}",
            f"/products/{slug(rng.choice(PRODUCTS))}-{rng.randint(100, 9999)}", f"/category/{slug(words(1, 2))}",
            "/account/settings", "/account/orders", f"/users/{ascii_fold(name()[0])}{rng.randint(1, 99)}",
            f"/questions/{rng.randint(10000, 79999999)}/{slug(title)}", f"/news/{slug(title)}.html",
            f"/r/{slug(words(1, 1))}/comments/{b64url(rand_bytes(4)).lower()}/{slug(title)}/",
        ])
        query = rng.choice([
            "", "", "", f"?utm_source=newsletter&utm_medium=email&utm_campaign=spring_sale_{rng.randint(2023, 2024)}",
            f"?ref={rng.choice(['homepage', 'sidebar', 'footer'])}", f"?page={rng.randint(2, 30)}",
            f"?fbclid=IwAR{b64url(rand_bytes(40))}", f"?gclid={b64url(rand_bytes(50))}",
            f"?color={rng.choice(COLORS)}&size={rng.choice(['S', 'M', 'L', 'XL'])}",
            f"?lang={rng.choice(['en', 'de', 'fr', 'es'])}", "?tab=reviews#",
        ]).rstrip("#")
        headers = with_common(nav, referer_path=rng.choice([None, "/", "/blog"]))
        if rng.random() < 0.1:
            headers.append(("Cache-Control", "max-age=0"))
        return req("browse", "GET", path + query, headers)
    if r < 0.6:
        path = rng.choice([
            f"/static/js/app.{hexid(6)}.js", f"/static/css/main.{hexid(8)}.css", f"/assets/vendor-{hexid(8)}.js",
            "/images/logo.png", "/images/logo.svg", "/favicon.ico", "/apple-touch-icon.png", "/manifest.webmanifest",
            f"/wp-content/uploads/2024/{rng.randint(1, 12):02d}/{slug(words(1, 3))}-1024x768.jpg",
            f"/fonts/inter-v13-latin-{rng.choice(['regular', '600', '700'])}.woff2", "/robots.txt", "/sitemap.xml",
            "/feed.xml", f"/_next/static/chunks/pages/_app-{hexid(16)}.js", f"/img/products/{rng.randint(100, 9999)}@2x.webp",
        ])
        dest = ("script" if path.endswith(".js") else "style" if path.endswith(".css") else
                "font" if path.endswith(".woff2") else "image")
        base = [h for h in xhr if h[0] not in ("Accept", "Sec-Fetch-Dest", "Sec-Fetch-Mode")]
        accept = {"script": "*/*", "style": "text/css,*/*;q=0.1", "font": "*/*",
                  "image": "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"}[dest]
        headers = with_common(base + [("Accept", accept), ("Sec-Fetch-Dest", dest),
                                      ("Sec-Fetch-Mode", "cors" if dest == "font" else "no-cors")],
                              referer_path=rng.choice(["/", "/blog", "/products"]))
        if rng.random() < 0.3:
            headers.append(("If-None-Match", rng.choice([f'W/"{rng.randint(100, 99999):x}-{hexid(27)}"', f'"{hexid(32)}"'])))
        if rng.random() < 0.15:
            headers.append(("If-Modified-Since", "Tue, 14 May 2024 08:21:33 GMT"))
        return req("browse", "GET", path, headers)
    if r < 0.85:
        path = rng.choice([
            f"/api/v1/items?page={rng.randint(1, 20)}&sort=-created_at", f"/api/v1/items/{rng.randint(1, 9999)}",
            "/api/v2/users/me", f"/api/v1/orders?status=open&limit={rng.choice([10, 25, 50])}",
            f"/api/v1/products?ids={','.join(str(rng.randint(1, 9999)) for _ in range(rng.randint(2, 6)))}",
            f"/api/v1/notifications?since={quote(iso_time(), safe='')}",
            f"/api/v1/search/suggest?q={quote_plus(words(1, 3))}",
            f"/api/v1/geo/reverse?lat={rng.uniform(-60, 60):.6f}&lon={rng.uniform(-120, 120):.6f}",
            f"/api/v1/reports/sales?from=2024-01-01&to=2024-{rng.randint(2, 12):02d}-01&group_by=week&fields=revenue,orders,aov",
            f"/api/v1/files/{new_uuid()}/download", "/api/health", "/api/v1/feature-flags",
            f"/api/v1/users?filter%5Brole%5D=admin&filter%5Bactive%5D=true&include=teams%2Cprofile",
        ])
        if rng.random() < 0.5:
            headers = with_common(api_client() + [("Authorization", f"Bearer {jwt()}")], cookie=False)
        else:
            headers = with_common(xhr + ([("Authorization", f"Bearer {jwt()}")] if rng.random() < 0.5 else []),
                                  referer_path="/app")
        if rng.random() < 0.2:
            headers.append(("If-None-Match", f'"{hexid(16)}"'))
        return req("browse", "GET", path, headers)
    # Navigation with URLs and paths in parameters (logins, redirects, OAuth).
    path = rng.choice([
        f"/login?next={quote('/account/orders?page=2', safe='')}",
        f"/login?return_to={quote('http://localhost/checkout', safe='')}",
        f"/out?url={quote('https://www.debian.org/doc/', safe='')}",
        f"/oauth/callback?code={b64url(rand_bytes(24))}&state={b64url(rand_bytes(16))}",
        f"/authorize?response_type=code&client_id={hexid(20)}&redirect_uri={quote('https://app.example.com/callback', safe='')}"
        f"&scope=openid%20profile%20email&state={b64url(rand_bytes(12))}&nonce={b64url(rand_bytes(12))}",
        f"/unsubscribe?email={quote(email(*name()), safe='')}&token={hexid(40)}",
        f"/share?text={quote(words(3, 12), safe='')}&url={quote('http://localhost/blog/' + slug(title), safe='')}",
        f"/download?file={quote(rng.choice(['reports/2024/Q1 summary.pdf', 'manual_v2.1.pdf', 'invoice-10423.pdf']), safe='')}",
        f"/calendar?date=2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}&view=week&tz={quote('Europe/Berlin', safe='')}",
    ])
    return req("browse", "GET", path, with_common(nav, referer_path=rng.choice([None, "/"])))


def main():
    makers = {"search": search, "form": form, "json": json_api, "multipart": multipart, "browse": browse}
    plan = [k for k, n in COUNTS.items() for _ in range(n)]
    rng.shuffle(plan)
    out = [makers[k]() for k in plan]
    with open(OUT, "w", encoding="utf-8") as f:
        for r in out:
            f.write(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n")
    digest = hashlib.sha256(open(OUT, "rb").read()).hexdigest()[:16]
    print(f"wrote {len(out)} requests to {os.path.relpath(OUT)} (sha256 {digest}…)")
    if "--stats" in sys.argv:
        for src in SOURCES:
            print(f"  {src}: {len(POOLS[src])} distinct lines available, {USED[src]} drawn")


if __name__ == "__main__":
    main()
