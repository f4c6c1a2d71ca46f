//! The rule catalog: what each family looks for.
//!
//! Ids are `family * 1000 + n` (941xxx is XSS, 942xxx SQL injection, ...), so
//! a family is read off the id. Each rule names the inputs it looks at, the
//! form of the input ([`View`]) and a matcher. Patterns are matched
//! case-insensitively on bytes; they are written here for Gatehouse (the
//! attack classes follow the OWASP Core Rule Set's families, so that its
//! regression corpus can measure them).
//!
//! Rules at paranoia level 1 must stay quiet on ordinary traffic: prose with
//! a semicolon before an English word, JSON documents, search queries. Rules
//! that cannot promise that go to level 2 and up.
//!
//! [`catalog`] lists the rules for `gatehouse waf-rules`.

use gatehouse_config::waf::WafFamily;

use super::decode::View;
use super::engine::CheckCtx;
use super::input::Source;
use super::verdict::Severity;

mod checks;
mod lists;

/// How a rule finds what it looks for.
pub(crate) enum Kind {
    /// A regex on one view of each target input.
    Regex(View, &'static str),
    /// Any of these phrases (whole words only when the flag is set).
    Phrases(View, &'static [&'static str], bool),
    /// libinjection's SQL injection tokenizer.
    Sqli,
    /// libinjection's HTML5 XSS detector.
    Xss,
    /// A request-level check; returns what it found.
    Check(fn(&CheckCtx<'_>) -> Option<String>),
}

pub(crate) struct RuleDef {
    pub id: u32,
    pub paranoia: u8,
    pub severity: Severity,
    pub msg: &'static str,
    /// Bits of [`Source`]s inspected.
    pub targets: u16,
    pub kind: Kind,
}

impl RuleDef {
    pub(crate) fn family(&self) -> WafFamily {
        WafFamily::of_rule(self.id).unwrap_or(WafFamily::Protocol)
    }
}

// Target sets.
pub(crate) const PATH: u16 = Source::Path.bit();
pub(crate) const URI: u16 = Source::RawUri.bit();
pub(crate) const NAMES: u16 = Source::ArgName.bit();
pub(crate) const ARGS: u16 = Source::Arg.bit();
pub(crate) const COOKIE_NAMES: u16 = Source::CookieName.bit();
pub(crate) const COOKIES: u16 = Source::Cookie.bit();
pub(crate) const UA: u16 = Source::UserAgent.bit();
pub(crate) const REFERER: u16 = Source::Referer.bit();
pub(crate) const HEADERS: u16 = Source::Header.bit();
pub(crate) const HEADER_NAMES: u16 = Source::HeaderName.bit();
pub(crate) const FILES: u16 = Source::FileName.bit();
pub(crate) const BODY: u16 = Source::Body.bit();
/// Everything a client fills in: arguments, cookies and unparsed bodies.
pub(crate) const INPUT: u16 = NAMES | ARGS | COOKIE_NAMES | COOKIES | BODY;
/// Inputs plus the two free-text headers every injection family checks.
pub(crate) const INPUT_UA: u16 = INPUT | UA | REFERER;
/// Every header value.
pub(crate) const ALL_HEADERS: u16 = HEADERS | UA | REFERER;

use Severity::{Critical, Notice, Warning};
use View::{Decoded, Raw, Shell, Stripped};

const fn rule(
    id: u32,
    paranoia: u8,
    severity: Severity,
    targets: u16,
    msg: &'static str,
    kind: Kind,
) -> RuleDef {
    RuleDef {
        id,
        paranoia,
        severity,
        msg,
        targets,
        kind,
    }
}

/// The whole catalog.
pub(crate) fn all() -> &'static [RuleDef] {
    CATALOG
}

/// A rule of the catalog, as listed by `gatehouse waf-rules`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RuleInfo {
    pub id: u32,
    pub family: &'static str,
    pub paranoia: u8,
    pub severity: &'static str,
    pub description: &'static str,
}

/// Every rule the WAF knows.
pub fn catalog() -> Vec<RuleInfo> {
    all()
        .iter()
        .map(|r| RuleInfo {
            id: r.id,
            family: r.family().name(),
            paranoia: r.paranoia,
            severity: r.severity.name(),
            description: r.msg,
        })
        .collect()
}

#[rustfmt::skip]
static CATALOG: &[RuleDef] = &[
    // ---- 911 methods -------------------------------------------------------
    rule(911001, 1, Critical, 0, "method is not allowed", Kind::Check(checks::method)),
    // ---- 913 scanners ------------------------------------------------------
    rule(913001, 1, Critical, UA, "security scanner user agent", Kind::Phrases(Raw, lists::SCANNERS, true)),
    rule(913002, 1, Critical, HEADER_NAMES, "header set by a security scanner", Kind::Phrases(Raw, lists::SCANNER_HEADERS, false)),
    // ---- 920 protocol enforcement -----------------------------------------
    rule(920001, 1, Critical, 0, "content type is not allowed", Kind::Check(checks::content_type_allowed)),
    rule(920002, 1, Critical, 0, "malformed Content-Type header", Kind::Check(checks::content_type_syntax)),
    rule(920003, 1, Critical, 0, "charset is not allowed", Kind::Check(checks::charset)),
    rule(920004, 1, Critical, 0, "request body without a Content-Type", Kind::Check(checks::body_without_type)),
    rule(920005, 1, Critical, 0, "GET or HEAD request with a body", Kind::Check(checks::get_with_body)),
    rule(920006, 1, Critical, 0, "Content-Length and Transfer-Encoding together", Kind::Check(checks::length_and_chunked)),
    rule(920007, 1, Critical, 0, "request body does not parse as its content type", Kind::Check(checks::body_unparsable)),
    rule(920008, 1, Critical, 0, "restricted request header", Kind::Check(checks::restricted_header)),
    rule(920009, 1, Critical, PATH, "restricted file extension", Kind::Regex(Decoded, r#"\.(?:asa|asax|ascx|backup|bak|bat|bck|bkp|cdx|cer|cfg|cmd|com|conf|config|cs|csproj|csr|dat|db|dbf|dll|dos|dist|dump|htr|htw|ida|idc|idq|inc|ini|key|licx|lnk|log|mdb|old|orig|pass|pdb|pem|pol|printer|pwd|rdb|resources|resx|save|sql|sqlite3?|swo|swp|sys|tmp|vb|vbproj|vbs|vsdisco|webinfo|xsd|xsx)(?:\.[a-z0-9]{1,4})?$"#)),
    rule(920010, 1, Critical, PATH, "backup or editor file", Kind::Regex(Decoded, r#"(?:~|\.(?:bak|old|orig|swp|save))$|\.\w+~(?:/|$)"#)),
    rule(920011, 1, Critical, INPUT | PATH | ALL_HEADERS, "NUL byte", Kind::Regex(Raw, r#"\x00|%00"#)),
    rule(920012, 1, Critical, 0, "invalid Range header", Kind::Check(checks::range)),
    rule(920013, 1, Critical, 0, "conflicting Connection header", Kind::Check(checks::connection)),
    rule(920014, 1, Critical, 0, "argument or body limits exceeded", Kind::Check(checks::arg_limits)),
    rule(920015, 1, Critical, 0, "JavaScript unicode escape outside JSON", Kind::Check(checks::unicode_escape_outside_json)),
    rule(920016, 1, Critical, 0, "legacy Request-Range header", Kind::Check(checks::request_range)),
    rule(920017, 1, Critical, 0, "malformed Accept header", Kind::Check(checks::accept)),
    rule(920018, 1, Critical, 0, "Accept-Encoding header too long", Kind::Check(checks::accept_encoding)),
    rule(920019, 1, Critical, 0, "multiple charsets in Content-Type", Kind::Check(checks::multiple_charsets)),
    rule(920020, 1, Critical, URI, "full-width unicode or overlong encoding", Kind::Regex(Raw, r#"%u[fF]{2}[0-9a-fA-F]{2}|%(?:c0|c1|e0%80)%[0-9a-f]{2}"#)),
    rule(920021, 1, Critical, 0, "multipart name with characters parsers disagree on", Kind::Check(checks::multipart_names)),
    rule(920022, 1, Warning, 0, "Host header is an IP address", Kind::Check(checks::host_is_ip)),
    rule(920023, 1, Critical, 0, "HTTP version is not allowed", Kind::Check(checks::http_version)),
    rule(920024, 1, Critical, 0, "Content-Length is not a number", Kind::Check(checks::content_length_syntax)),
    rule(920025, 1, Critical, 0, "invalid UTF-8 in query arguments", Kind::Check(checks::invalid_utf8_args)),
    rule(920026, 1, Critical, 0, "empty Accept or User-Agent header", Kind::Check(checks::empty_accept_or_agent)),
    rule(920027, 1, Critical, 0, "request target in absolute form", Kind::Check(checks::absolute_form)),
    rule(920101, 2, Critical, 0, "invalid URL encoding", Kind::Check(checks::invalid_url_encoding)),
    rule(920102, 2, Critical, ARGS | NAMES, "control characters in arguments", Kind::Regex(Raw, r#"[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]"#)),
    rule(920103, 2, Critical, URI, "double URL encoding", Kind::Regex(Raw, r#"%25[0-9a-f]{2}"#)),
    rule(920104, 2, Critical, 0, "method override in the query string", Kind::Check(checks::method_override_arg)),
    rule(920105, 2, Critical, 0, "too many Range parts", Kind::Check(checks::many_ranges)),
    rule(920106, 2, Notice, 0, "missing Accept header", Kind::Check(checks::missing_accept)),
    rule(920107, 2, Critical, 0, "Accept-Charset header", Kind::Check(checks::accept_charset)),
    rule(920108, 2, Warning, 0, "missing or empty User-Agent", Kind::Check(checks::missing_user_agent)),
    rule(920201, 3, Critical, ARGS | NAMES | ALL_HEADERS, "non-printable characters", Kind::Regex(Raw, r#"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"#)),
    rule(920202, 3, Critical, 0, "response caching directive in a request", Kind::Check(checks::response_cache_control)),
    // ---- 921 protocol attacks ---------------------------------------------
    rule(921001, 1, Critical, INPUT, "request smuggling: a request line inside a value", Kind::Regex(Decoded, r#"(?:^|[\r\n])\s*(?:get|post|head|options|connect|put|delete|trace|track|patch|propfind|proppatch|mkcol|copy|move|lock|unlock)\s+\S+\s+http/\d"#)),
    rule(921002, 1, Critical, INPUT | PATH, "response splitting: a header after a line break", Kind::Regex(Decoded, r#"[\r\n]\W*(?:content-(?:type|length|disposition)|set-cookie|location|refresh|x-xss-protection|access-control-allow-\w+)\s*:"#)),
    rule(921003, 1, Critical, INPUT | PATH, "response splitting: a status line or markup after a line break", Kind::Regex(Decoded, r#"[\r\n]\s*(?:http/\d|<\s*(?:html|meta|script|body)\b)"#)),
    rule(921004, 1, Critical, NAMES | COOKIE_NAMES | ALL_HEADERS | PATH, "line break in a name, header or path", Kind::Regex(Decoded, r#"[\r\n]"#)),
    rule(921005, 1, Critical, ARGS | BODY, "header injection: a line break and a header", Kind::Regex(Decoded, r#"[\r\n]\s*(?:set-cookie|location|content-type|content-length|transfer-encoding|connection|refresh|host|cookie|authorization|remote-addr|x-forwarded-[\w-]+|x-real-ip|x-original-url|x-rewrite-url|access-control-[\w-]+)\s*:"#)),
    rule(921006, 1, Critical, INPUT, "LDAP injection", Kind::Regex(Decoded, r#"\)\s*[&|!]?\s*\(\s*(?:[&|!]|[\w.-]+\s*[~<>]?=)|\)\s*[&|!]\s*\(|\)\s*\(\s*[&|!]?\s*\)?\s*$|^\s*\*?\)\s*\("#)),
    rule(921007, 1, Critical, URI | PATH, "mod_proxy unix-socket smuggling (CVE-2021-40438)", Kind::Regex(Decoded, r#"unix:[^|]*\|"#)),
    rule(921008, 1, Critical, 0, "obsolete cookie attributes ($Version)", Kind::Check(checks::cookie_v1)),
    rule(921009, 1, Critical, 0, "Content-Type names more than one media type", Kind::Check(checks::content_type_list)),
    rule(921101, 2, Critical, ARGS, "line break in a query argument", Kind::Check(checks::query_line_break)),
    rule(921201, 3, Critical, 0, "the same argument twice", Kind::Check(checks::duplicate_args)),
    rule(921202, 3, Critical, NAMES, "parameter pollution via array syntax", Kind::Regex(Decoded, r#"\[[^\]]*\][^\[=]+|\]\s*\[|^[^\[]*\][^\[]*\["#)),
    rule(921203, 3, Critical, 0, "Range header", Kind::Check(checks::any_range)),
    // ---- 922 multipart -----------------------------------------------------
    rule(922001, 1, Critical, 0, "multipart charset is not allowed", Kind::Check(checks::multipart_charset)),
    rule(922002, 1, Critical, 0, "multipart Content-Transfer-Encoding", Kind::Check(checks::multipart_transfer_encoding)),
    // ---- 930 path traversal / LFI -----------------------------------------
    rule(930001, 1, Critical, URI | ALL_HEADERS | BODY | ARGS, "encoded path traversal", Kind::Regex(Raw, r#"(?:%(?:c0%ae|c0%af|c1%9c|c0%2e|e0%80%ae|25(?:2e|c0|2f|5c)|2e%2e|u002e|uff0e|u2215|u2216)|0x2e(?:\.|%00|0x2e)|0x5c0x2e|\.%00|\.\.(?:%2f|%5c|%c0%af|%c1%9c|0x2f|0x5c))"#)),
    rule(930002, 1, Critical, INPUT | ALL_HEADERS | FILES | URI, "path traversal", Kind::Regex(Decoded, r#"(?:^|[\\/])\.{2,3}(?:[\\/]|;|$)|\.{2,3}[\\/]\s*\.{0,3}[\\/]"#)),
    rule(930003, 1, Critical, INPUT | FILES, "access to an OS or application file", Kind::Phrases(Decoded, lists::SENSITIVE_FILES, false)),
    rule(930004, 1, Critical, PATH, "access to a restricted file or directory", Kind::Phrases(Decoded, lists::RESTRICTED_PATHS, false)),
    rule(930005, 1, Critical, PATH, "access to an AI coding assistant's configuration", Kind::Regex(Decoded, r#"/\.(?:claude|cursor|continue|aider|windsurf|codeium|copilot|codex|gemini|roo|cline|kiro|amazonq|junie|zed|goose|tabnine|rovodev|opencode|a0proj|plandex|fabric|n8n|augment|qodo|sourcegraph|cody|trae|void|kilocode)(?:[/._-]|$)|/(?:claude|agents|gemini)\.md$|/\.(?:cursorrules|clinerules|windsurfrules|mcp\.json|aider\.conf\.yml|aiignore|cursorignore|codeiumignore|aiexclude)$"#)),
    rule(930101, 2, Critical, ALL_HEADERS, "OS file access in a header", Kind::Phrases(Decoded, lists::SENSITIVE_FILES, false)),
    // ---- 931 remote file inclusion ----------------------------------------
    rule(931001, 1, Critical, ARGS | BODY, "URL with an IP address as argument", Kind::Regex(Decoded, r#"^\s*(?:file|ftps?|https?|gopher|dict)://(?:\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|\[?[0-9a-f]*:[0-9a-f:]+\]?)"#)),
    rule(931002, 1, Critical, INPUT | URI, "URL in a known file-inclusion parameter", Kind::Regex(Decoded, r#"(?:\binclude\s*\(|mosconfig_absolute_path|_conf\[path\]|_server\[document_root\]|gallery_basedir|path\[docroot\]|appserv_root|config\[root_dir\]|\bbase_?path|\bphpbb_root_path)\s*=?\s*(?:file|ftps?|https?)://"#)),
    rule(931003, 1, Critical, ARGS, "URL ending in a question mark", Kind::Regex(Decoded, r#"^\s*(?:file|ftps?|https?)(?::\S*)?\?+$"#)),
    rule(931101, 2, Critical, ARGS, "off-site URL as argument", Kind::Check(checks::off_domain_url)),
    rule(931102, 2, Critical, PATH, "URL in the path", Kind::Regex(Decoded, r#"/(?:file|ftps?|https?):/"#)),
    // ---- 932 OS command injection -----------------------------------------
    rule(932001, 1, Critical, INPUT_UA, "Unix command after a command separator", Kind::Regex(Shell, lists::UNIX_AFTER_SEPARATOR)),
    rule(932002, 1, Critical, ARGS | COOKIES | BODY | UA | REFERER, "Unix command at the start of a value", Kind::Regex(Shell, lists::UNIX_AT_START)),
    rule(932003, 1, Critical, INPUT_UA, "short Unix command glued to a separator", Kind::Regex(Shell, lists::UNIX_GLUED)),
    rule(932004, 1, Critical, INPUT_UA, "Unix shell expression", Kind::Regex(Decoded, r#"\$\(\(?[^)]*\)|\$\{[^}\s]+\}|[<>]\(\s*[\w$/]|\$\[[^\]]*\]|\w\s*<<<|(?:^|\s)/[\w.-]*(?:/[\w.-]*)*\[!?[a-z][a-z-]*\][\w.-]*|\$shell\b"#)),
    rule(932107, 2, Critical, INPUT_UA, "backtick command substitution", Kind::Regex(Decoded, r#"`[^`]+`"#)),
    rule(932005, 1, Critical, INPUT_UA, "Unix program by full path", Kind::Regex(Shell, r#"(?:^|[\s;|&`(=<>])/?(?:usr/(?:local/)?)?s?bin/[a-z0-9_.+-]+|(?:^|[\s;|&`(=<>])/(?:etc/(?:passwd|shadow|group|hosts|sudoers|crontab)|dev/(?:tcp|udp)/|proc/self/)"#)),
    rule(932006, 1, Critical, INPUT_UA | ALL_HEADERS, "Shellshock function definition", Kind::Regex(Decoded, r#"\(\s*\)\s*\{"#)),
    rule(932007, 1, Critical, INPUT_UA, "Unix alias definition", Kind::Regex(Shell, r#"\balias\s+(?:[-+]\S*\s+)*[\w.-]+=\S"#)),
    rule(932008, 1, Critical, INPUT | FILES, "upload of a sensitive file name", Kind::Check(checks::restricted_upload)),
    rule(932009, 1, Critical, INPUT_UA, "Windows command after a separator", Kind::Regex(Shell, lists::WINDOWS_AFTER_SEPARATOR)),
    rule(932010, 1, Critical, INPUT_UA, "Windows FOR or IF command", Kind::Regex(Decoded, r#"(?:^|[\s;&|(])for(?:\s*/[dflr])?(?:\s+"[^"]*"|\s+[^\s%"]+)*\s+%%?\S*\s+in\s*\(.*\)\s*do\b|(?:^|[\s;&|(])if(?:\s*/i)?(?:\s+not)?\s+(?:exist\s|defined\s|errorlevel\s+\d|cmdextversion\s+\d|(?:"[^"]*"|\S+)\s*==\s*\S|\S+\s+(?:equ|neq|lss|leq|gtr|geq)\s+\S)"#)),
    rule(932011, 1, Critical, INPUT_UA, "PowerShell cmdlet", Kind::Regex(Decoded, lists::POWERSHELL)),
    rule(932012, 1, Critical, INPUT_UA, "PowerShell alias after a separator", Kind::Regex(Shell, r#"(?:^|[;&|`\n({]|\$\()\s*(?:iwr|irm|iex|iwmi|gwmi|icm|saps|sajb|ipmo|sal)\b"#)),
    rule(932013, 1, Critical, INPUT, "shell tilde expansion", Kind::Regex(Decoded, r#"(?:^|\s)~[+-]\d*(?:\s|/|$)"#)),
    rule(932014, 1, Critical, INPUT, "shell brace expansion", Kind::Regex(Decoded, r#"\w\{[a-z0-9_./~$-]*,[a-z0-9_./~$,-]*\}|\{[a-z0-9_./~$-]*,[a-z0-9_./~$,-]*\}\w|\{,[a-z0-9_./~$,-]+\}"#)),
    rule(932015, 1, Critical, INPUT, "shell history expansion", Kind::Regex(Decoded, r#"!-\d"#)),
    rule(932101, 2, Critical, INPUT_UA, "Unix command after a separator (common words)", Kind::Regex(Shell, lists::UNIX_WORDS_AFTER_SEPARATOR)),
    rule(932102, 2, Critical, INPUT_UA, "shell glob in a path", Kind::Regex(Shell, r#"/(?:[a-z]*[?*]+[a-z?*]*/)+|/(?:[a-z]+[?*][a-z?*]*)"#)),
    rule(932103, 2, Critical, INPUT, "SMTP/IMAP/POP3 command after a line break", Kind::Regex(Decoded, r#"[\r\n]\s*(?:(?:mail\s+from|rcpt\s+to)\s*:|ehlo\s|helo\s|retr\s+\d|top\s+\d+\s+\d|list\s+\d|auth\s+\w|[a-z]\d{1,4}\s+(?:authenticate|append|status|uid|examine|select|fetch|store|copy|list|login|create|delete|rename)\b)"#)),
    rule(932104, 2, Critical, INPUT, "SQLite shell command", Kind::Regex(Decoded, r#"[\r\n;]\s*\.(?:shell|system|databases|dump|import|output|load|tables|schema|read)\b"#)),
    rule(932105, 2, Critical, INPUT, "shell function definition (fork bomb)", Kind::Regex(Decoded, r#"[\w.:]+\s*\(\s*\)\s*\{[^}]*\|[^}]*&[^}]*\}"#)),
    rule(932106, 2, Critical, INPUT_UA, "shell variable evasion", Kind::Regex(Decoded, r#"\w\$\{?\w+\}?\s*(?:\+|\s)+[/-]|[a-z]\$[@*?_]|\$\{\w*\}\w"#)),
    // ---- 933 PHP injection --------------------------------------------------
    rule(933001, 1, Critical, NAMES | ARGS | BODY | FILES, "PHP open tag", Kind::Regex(Decoded, r#"<\?(?:php\b|=|\s|$)|\[[/\\]?php\]"#)),
    rule(933002, 1, Critical, FILES, "upload of a PHP script", Kind::Regex(Decoded, r#"\.(?:php\d*|phtml|phar|phps|pht|phpt|pgif|inc)\.*\s*$"#)),
    rule(933003, 1, Critical, ARGS | BODY, "PHP configuration directive", Kind::Regex(Decoded, lists::PHP_INI)),
    rule(933004, 1, Critical, INPUT, "PHP superglobal", Kind::Regex(Decoded, r#"\$_(?:get|post|cookie|request|server|files|env|session)\b|\$globals\b|\$http_(?:raw_post_data|(?:get|post|cookie|server|env|session|post_files)_vars)\b"#)),
    rule(933005, 1, Critical, INPUT, "PHP variable variable", Kind::Regex(Decoded, r#"\$\s*\{\s*\S[^}]*\}"#)),
    rule(933006, 1, Critical, INPUT | URI, "PHP stream wrapper", Kind::Regex(Decoded, r#"\b(?:php|zlib|glob|phar|ssh2(?:\.\w+)?|rar|ogg|expect|zip|compress\.(?:zlib|bzip2))://"#)),
    rule(933007, 1, Critical, INPUT, "high-risk PHP function call", Kind::Regex(Decoded, lists::PHP_FUNCTIONS)),
    rule(933008, 1, Critical, INPUT, "PHP function call with comment or whitespace evasion", Kind::Regex(Decoded, lists::PHP_CALL_EVASION)),
    rule(933009, 1, Critical, INPUT | ALL_HEADERS, "PHP serialized object", Kind::Regex(Decoded, r#"[oc]:\d+:"[^"]+":\d+:\{"#)),
    rule(933010, 1, Critical, INPUT, "PHP variable function call", Kind::Regex(Decoded, r#"\$+[a-z_\x7f-\xff][\w\x7f-\xff]*(?:\s*\[[^\]]*\]|\s*\{[^}]*\})*\s*\(|\$\s*\{[^}]+\}\s*\("#)),
    rule(933011, 1, Critical, INPUT, "PHP call of a string or cast expression", Kind::Regex(Decoded, r#"\)\s*(?:['"][\w-]*['"]\s*\.?\s*)*\(\s*['"][^'"]*['"]\s*\)|\(\s*string\s*\)\s*['"]"#)),
    rule(933012, 1, Critical, FILES, "PHP session file name", Kind::Regex(Decoded, r#"(?:^|[/\\])sess_[a-z0-9,-]{20,}$"#)),
    rule(933101, 2, Critical, INPUT, "PHP function name and parenthesis", Kind::Phrases(Stripped, lists::PHP_FUNCTION_PHRASES, false)),
    // ---- 934 generic (Node.js, SSRF, templates) ---------------------------
    rule(934001, 1, Critical, INPUT, "Node.js injection", Kind::Regex(Decoded, r#"_\$\$nd_func\$\$_|__js_function|eval\s*\(\s*string\.fromcharcode|function\s*\(\s*\)\s*\{|new\s+function\s*\(|this\.constructor\.constructor|process\.(?:mainmodule|binding|kill|dlopen)\b|child_process|\brequire\s*\(\s*['`"](?:child_process|fs|net|vm)['`"]"#)),
    rule(934002, 1, Critical, INPUT, "cloud metadata address (SSRF)", Kind::Regex(Decoded, r#"(?:^|[^\w.])(?:169\.254\.169\.254|metadata\.google\.internal|metadata\.packet\.net|metadata\.azure\.com|100\.100\.100\.200|fd00:ec2::254|169\.254\.170\.2|metadata\.tencentyun\.com|instance-data)(?:[/:]|$|\b)"#)),
    rule(934003, 1, Critical, INPUT, "prototype pollution", Kind::Regex(Decoded, r#"__proto__|constructor\s*(?:\.|\[\s*['`]?)\s*prototype"#)),
    rule(934004, 1, Critical, INPUT, "Ruby command execution", Kind::Regex(Decoded, r#"\b(?:process\.spawn|kernel\.(?:exec|spawn|system)|io\.popen|open3\.\w+|pty\.spawn)\s*\("#)),
    rule(934005, 1, Critical, INPUT, "JavaScript busy loop", Kind::Regex(Stripped, r#"while\s*\(\s*!\s*(?:false|[-+]?0|''|""|null|undefined|nan|\[\s*\]\s*\[\s*\])\s*\)"#)),
    rule(934006, 1, Critical, ARGS | NAMES, "data: URI", Kind::Regex(Decoded, r#"^\s*data:(?:[a-z-]+/[a-z0-9.+-]+|,|;base64)"#)),
    rule(934007, 1, Critical, 0, "loopback host name in an argument (SSRF)", Kind::Check(checks::loopback_url)),
    rule(934008, 1, Critical, INPUT, "server-side template injection", Kind::Regex(Decoded, r#"(?:\{\{|\$\{|#\{|<%=?|\{%)\s*(?:[\d.]+\s*[*+/%-]\s*[\d.]+|[^}%]*(?:__\w+__|\.exec\s*\(|runtime|getclass|forname|popen|\bsystem\s*\(|\bimport\b))"#)),
    rule(934101, 2, Critical, INPUT, "Node.js module loading", Kind::Regex(Decoded, r#"\brequire\s*(?:\.main)?[\s.(]|\.constructor\._load\b|global\.process"#)),
    rule(934102, 2, Critical, ARGS, "numeric or hex IP address in a URL (SSRF)", Kind::Regex(Decoded, r#"^\s*[a-z][a-z0-9+.-]*://(?:[^@/]*@)?(?:\d{8,10}|0x[0-9a-f]{8}|(?:0x[0-9a-f]{1,2}\.){3}0x[0-9a-f]{1,2}|0[0-7]{1,3}(?:\.0[0-7]{1,3}){3}|\[[0-9a-f:]*:(?:ffff|0):[^\]]*\])(?:[:/]|$)"#)),
    rule(934103, 2, Critical, INPUT, "Perl code execution", Kind::Regex(Decoded, r#"@\{\s*\[[^\]]*\]\s*\}"#)),
    rule(934104, 2, Critical, INPUT, "template control block", Kind::Regex(Decoded, r#"(?:\{%|<%)\s*(?:if|for|set|import|include|extends|block|macro)\b"#)),
    rule(934105, 2, Critical, NAMES, "ORM relation-traversing filter", Kind::Regex(Decoded, r#"(?:__[a-z]+){3,}"#)),
    rule(934201, 3, Critical, NAMES, "ORM lookup filter", Kind::Regex(Decoded, r#"__(?:startswith|istartswith|endswith|iendswith|contains|icontains|regex|iregex|isnull|gte?|lte?|in|exact|iexact|range|search)$"#)),
    // ---- 941 XSS ------------------------------------------------------------
    rule(941001, 1, Critical, INPUT_UA | FILES, "XSS (libinjection)", Kind::Xss),
    rule(941002, 1, Critical, INPUT_UA | PATH, "script tag", Kind::Regex(Decoded, r#"<\s*(?:[a-z]+\s*:\s*)?script\b"#)),
    rule(941003, 1, Critical, INPUT_UA | PATH, "event handler attribute", Kind::Regex(Decoded, r#"(?:^|[\s"'`;/=(,])(?:on[a-z]{3,}|formaction)\s*=(?:[^=]|$)"#)),
    rule(941004, 1, Critical, INPUT_UA, "XML namespace or entity declaration", Kind::Regex(Decoded, r#"(?:[\s"'<]xmlns(?::[\w-]+)?\s*=|xlink:href\s*=|xsi:schemalocation\s*=|<!(?:entity|doctype)\s)"#)),
    rule(941005, 1, Critical, INPUT_UA, "script URL in CSS", Kind::Regex(Decoded, r#"url\s*\(\s*['"]?\s*(?:javascript|vbscript|livescript)\b|url\s*\(\s*['"]?\s*data\s*:|expression\s*\(|-moz-binding\s*:|behavior\s*:\s*url|\bdata\s*:[^,]{0,40},\s*<"#)),
    rule(941006, 1, Critical, INPUT_UA | PATH, "dangerous HTML element", Kind::Regex(Decoded, r"<\s*/?\s*(?:[a-z]+:)?(?:iframe|frame|frameset|object|embed|applet|base|link|meta|style|svg|math|isindex|xss|form\s+action|vmlframe|import|template|marquee|xmp|plaintext)\b|<\s*:\s*vmlframe|<\?import\b|<\s*[a-z]+:(?:vmlframe|rect|oval|shape|image)\b")),
    rule(941007, 1, Critical, INPUT_UA, "script URL scheme", Kind::Regex(Decoded, r#"(?:j\s*a\s*v\s*a|v\s*b|l\s*i\s*v\s*e)\s*s\s*c\s*r\s*i\s*p\s*t\s*:"#)),
    rule(941008, 1, Critical, INPUT_UA, "DOM access or server-side include", Kind::Regex(Stripped, r#"\b(?:document\s*\.\s*(?:cookie|write(?:ln)?|domain|location|body|queryselector(?:all)?|getelementby\w+|createelement|documentelement|forms|scripts)|window\s*\.\s*location|\.\s*(?:inner|outer)html\s*=)|<!--\s*#\s*(?:exec|include|echo|set|config|printenv)\b"#)),
    rule(941009, 1, Critical, INPUT, "HTML tag with an event handler or script source", Kind::Regex(Decoded, r#"<[a-z][\w:-]*[\s/"']+(?:[^>]*[\s/"'])?on[a-z]{3,}\s*=|<[a-z][\w:-]*\s[^>]*\b(?:src|href|data|action|formaction)\s*=\s*['"]?\s*(?:javascript|vbscript|data):"#)),
    rule(941010, 1, Critical, RAW_BYTES, "US-ASCII (7-bit) encoded markup", Kind::Regex(Decoded, r#"(?-u:\xbc)/?[a-z][a-z0-9]*(?-u:[\xc2\xd0])?(?-u:\xbe)"#)),
    rule(941011, 1, Critical, INPUT, "UTF-7 encoded markup", Kind::Regex(Decoded, r#"\+ad[w4]-"#)),
    rule(941012, 1, Critical, INPUT, "JSFuck", Kind::Regex(Decoded, r#"!!?\s*\[\s*\]|\[\s*\]\s*\+|\+\s*!\s*\+?\s*\["#)),
    rule(941013, 1, Critical, INPUT, "JavaScript global object access", Kind::Regex(Stripped, r#"\b(?:document|window|self|top|parent|frames|globalthis|content)\s*(?:\.\s*|\[\s*['"`]\s*)(?:cookie|domain|location|alert|prompt|confirm|eval|document|write|open|fetch|localstorage|sessionstorage|execscript|settimeout|setinterval|constructor|atob)\b|\(\s*(?:document|window|self|top|parent)\s*\)\s*\[|\b(?:self|window|document|top|parent)\s*\[\s*['"`]\s*\\x"#)),
    rule(941014, 1, Critical, INPUT, "JavaScript code execution function", Kind::Regex(Stripped, r#"\b(?:eval|settimeout|setinterval|execscript|new\s+function)\s*\(|\b(?:alert|prompt|confirm|atob|btoa)\s*(?:\(|`)"#)),
    rule(941015, 1, Critical, INPUT, "JavaScript call via tagged template", Kind::Regex(Stripped, r#"\[\s*\]\s*\.\s*\w+\s*\.\s*(?:call|apply|bind)\b|\w\s*`[^`]*\$\{|\.\s*(?:call|apply|bind)\s*`"#)),
    rule(941016, 1, Critical, INPUT, "tag name spelled with spaces", Kind::Regex(Decoded, r#"<\s*(?:[a-z]\s+){2,}[a-z]\b"#)),
    rule(941101, 2, Critical, PATH | REFERER, "markup in the path or Referer", Kind::Regex(Decoded, r#"<\s*/?\s*[a-z][\w:-]*[\s/>]|["'`][^"'`]*\bon[a-z]{3,}\s*="#)),
    rule(941102, 2, Critical, INPUT, "HTML comment close", Kind::Regex(Decoded, r#"-->"#)),
    rule(941103, 2, Critical, INPUT, "script language attribute", Kind::Regex(Decoded, r#"\blanguage\s*=\s*['"]?\s*(?:j|vb)script|#@~\^"#)),
    rule(941104, 2, Critical, INPUT, "anchor or iframe injection", Kind::Regex(Decoded, r#"<\s*a\s[^>]*\bhref\s*=|<\s*iframe\b|\bsrcdoc\s*="#)),
    rule(941105, 2, Critical, INPUT, "JavaScript property obfuscation", Kind::Regex(Decoded, r#"['"]\s*in\s*\w|['"]\s+in[a-z]+\.[a-z]+\s*="#)),
    rule(941106, 2, Critical, INPUT, "AngularJS sandbox escape", Kind::Regex(Decoded, r#"\{\{[^}]*constructor[^}]*\}\}"#)),
    rule(941107, 2, Critical, INPUT, "noscript element", Kind::Regex(Decoded, r#"<\s*noscript\b"#)),
    // ---- 942 SQL injection --------------------------------------------------
    rule(942001, 1, Critical, INPUT_UA, "SQL injection (libinjection)", Kind::Sqli),
    rule(942002, 1, Critical, INPUT_UA, "database catalog name", Kind::Regex(Stripped, r#"\b(?:information_schema|pg_catalog|pg_toast|pg_shadow|pg_user|mysql\.(?:user|db|proc)|sysobjects|syscolumns|sysdatabases|sys\.(?:tables|columns|objects|databases|schemas|sql_logins)|msysaccessobjects|msysqueries|msysobjects|msysrelationships|sqlite_(?:master|schema|temp_master)|all_tables|user_tables|dba_users|all_users|user_objects|tempdb|msdb|northwind|schema_name)\b|\b(?:database|db_name|schema_name|current_user|session_user|system_user|user_name|version|current_database|current_schema)\s*\(|@@(?:version|datadir|hostname|basedir)\b"#)),
    rule(942003, 1, Critical, INPUT_UA, "SQL function typical of injections", Kind::Regex(Stripped, lists::SQL_FUNCTIONS)),
    rule(942004, 1, Critical, INPUT_UA | PATH, "SQL time-based probe", Kind::Regex(Stripped, r#"\b(?:sleep|pg_sleep|benchmark)\s*\(|\bwaitfor\s+(?:delay|time)\b|\bdbms_lock\s*\.\s*sleep|\bselect\s+(?:benchmark|sleep|if|pg_sleep)\b|\bsleep\s*\(\s*\d"#)),
    rule(942005, 1, Critical, INPUT_UA, "SQL union query", Kind::Regex(Stripped, r#"union\W*(?:all\W*|distinct\W*)?\(?\s*select(?:\W.*?)?from\b|\bun\s?ion\s+(?:all\s+|distinct\s+)?\(?\s*sel\s?ect\b"#)),
    rule(942006, 1, Critical, INPUT_UA, "SQL stored procedure or code execution", Kind::Regex(Stripped, r#"\bexec(?:ute)?\s+(?:master\.|xp_|sp_)|\bxp_(?:cmdshell|dirtree|regread|regwrite|fileexist|availablemedia|servicecontrol)\b|\bsp_(?:executesql|oacreate|configure|makewebtask|addlogin|password)\b|\bprocedure\s+analyse\s*\(|\bexec(?:ute)?\s*\(\s*@|\bdeclare\s*@\w+|\bopenrowset\s*\(|\bopendatasource\s*\(|\bexecute\s+immediate\b|\bmerge\s+into\b|\bmatch\s*\(.*\)\s*against\s*\("#)),
    rule(942007, 1, Critical, INPUT_UA, "SQL statement after a semicolon", Kind::Regex(Stripped, r#";\s*(?:insert\s+into|update\s+[\w.`\[\]]+\s+set\b|delete\s+from|drop\s+(?:table|database|user|function|procedure)|truncate\b|replace\b|alter\s+(?:table|user|database)|create\s+(?:function|table|user|procedure|trigger)|shutdown\b|grant\b|rename\s+table|select\b|declare\b|exec\b|set\s+@)|\bcreate\s+(?:function|procedure)\s+\w+.*\breturns\b"#)),
    rule(942008, 1, Critical, INPUT_UA, "SQL conditional or comparison injection", Kind::Regex(Stripped, r#"\)\s*like\s*\(|\bcase\s+when\b.*\bthen\b|\bhaving\s+(?:count|sum|min|max|avg)\s*\(|\bgroup\s+by\b.+\bhaving\b|['"`]\s*(?:or|and|xor|\|\||&&)\s+['"`]?\w+['"`]?\s*(?:[=<>]|like\b)|\b(?:or|and)\s+\d+\s*[=<>]+\s*\d+|['"`]\s*(?:or|and)\s+(?:true|false|not)\b|['"]\w*['"]\s*!=\s*['"]|\balter\s+table\b|\bcreate\s+table\b"#)),
    rule(942009, 1, Critical, INPUT_UA, "SQL select of a function or column list", Kind::Regex(Stripped, r#"\bselect\s+(?:char|group_concat|concat(?:_ws)?|substring|ascii|hex|unhex|load_file|version|user|database|@@\w+|count\s*\(\s*\*|\d+\s*,|\*\s*from|top\s+\d+)\s*\(?|\b\d+\s+as\s+["'`]?\w+["'`]?\s+from\b|\bselect\b.{0,40}\bfrom\b.{0,40}\bwhere\b.*[=<>]"#)),
    rule(942010, 1, Critical, INPUT_UA, "MySQL executable comment or optimizer hint", Kind::Regex(Decoded, r#"/\*!\d*|/\*\s*\+"#)),
    rule(942011, 1, Critical, INPUT, "numeric overflow probe", Kind::Regex(Decoded, r#"(?:^|[^\d.])(?:4294967295|4294967296|2147483648|9223372036854775807|9223372036854775808|2\.2250738585072011e-308|1e309)(?:$|[^\d])"#)),
    rule(942012, 1, Critical, INPUT, "MongoDB operator", Kind::Regex(Decoded, r#"\[\s*\$(?:ne|eq|lt|lte|gt|gte|in|nin|regex|where|exists|or|and|not|nor|expr|elemmatch|size|type|mod|all|text|function|jsonschema)\s*\]|^\$(?:ne|eq|lt|lte|gt|gte|in|nin|regex|where|exists|or|and|not|nor|expr|elemmatch|function|text|size|type|mod|all|jsonschema|options|comment|geowithin|near)$"#)),
    rule(942013, 1, Critical, INPUT_UA, "SQL comment after a quote", Kind::Regex(Decoded, r#"['"`]\s*\)*\s*(?:--[\s\x00-\x1f]|--$|#|/\*|;\s*--|;\s*%00|;\s*$)"#)),
    rule(942014, 1, Critical, INPUT_UA, "SQL injection with into outfile or load data", Kind::Regex(Stripped, r#"\binto\s+(?:out|dump)file\b|\bload\s+data\s+(?:local\s+)?infile\b|\bload_file\s*\(|'msdasql'|\butl_(?:http|inaddr|file)\s*\.|\bdbms_\w+\s*\."#)),
    rule(942015, 1, Critical, INPUT_UA | PATH, "PostgreSQL cast or JSON operator", Kind::Regex(Stripped, r#"::\s*(?:jsonb?|int[248]?|integer|bigint|bool(?:ean)?|text|varchar|numeric|regclass|oid|bytea)\b|['"]\s*(?:@>|<@|\?[|&]|#>>?|#-|->>?|@\?|@@)\s*['"$\w(\[]|\bjson(?:b)?_(?:extract\w*|build_object|pretty|each|object_keys|array_elements|set|agg)\s*\(|\blo_(?:get|import|export|open|creat)\s*\(|\bdiv\s*\(\s*[\d.-]+\s*,|\b\d+\.e\s*[(.]\w"#)),
    rule(942016, 1, Critical, INPUT_UA, "SQL function call", Kind::Regex(Stripped, lists::SQL_CALLS)),
    rule(942017, 1, Critical, INPUT_UA, "SQL column alias or REGEXP after a quote", Kind::Regex(Stripped, r#"[`"']\s*as\s*[`"']?[\w]*[`"']?\s+from\b|`\s*(?:regexp|rlike)\b"#)),
    rule(942101, 2, Critical, INPUT_UA, "SQL function name and parenthesis", Kind::Regex(Stripped, lists::SQL_WORD_FUNCTIONS)),
    rule(942102, 2, Critical, INPUT_UA, "SQL operator or tautology", Kind::Regex(Stripped, r#"\b\d+\s*(?:=|<=>|!=|<>)\s*\d+\b|\blike\s+(?:null|['"]|\d)|\bis\s+not\s+\w|\bnot\s+(?:regexp|like|glob|between|in)\b|\b(?:regexp|rlike|glob|sounds\s+like)\s+['"]|(?:&&|\|\|)\s*['"(]?\w|\bxor\b|['"`]\s*[<>]"#)),
    rule(942103, 2, Critical, INPUT_UA, "SQL keywords in sequence", Kind::Regex(Stripped, r#"\b(?:select|insert|update|delete|drop|alter|create|union|exec)\b[^a-z]+\b(?:from|into|table|where|select|values|set|order\s+by|group\s+by|limit)\b|\border\s+by\s+(?:\d+|if\s*\()|\blimit\s+\d+\s*,\s*\d+|\bfrom\s*[`\[]\w+[`\]]|\bvalues\s*\(\s*['"\d]"#)),
    rule(942104, 2, Critical, INPUT_UA, "SQL quote and keyword", Kind::Regex(Stripped, r#"['"`]\s*(?:;|\|\||&&)?\s*(?:and|or|xor|union|select|insert|update|delete|drop|alter|waitfor|glob|print|having|when|not|is|between|like|regexp|collate|div|mod|in\s*\()\b|['"`]\s*;|\)\s*when\s+\d+\s+then\b|\bin\s*\(\s*select\b|\bexcept\s+(?:select|values)\b"#)),
    rule(942105, 2, Critical, INPUT_UA, "SQL hex or char encoding", Kind::Regex(Decoded, r#"\b0x[0-9a-f]{6,}\b|\\0x[0-9a-f]|\bx'[0-9a-f]{6,}'|\bchar\s*\(\s*\d+\s*(?:,\s*\d+\s*)+\)"#)),
    rule(942106, 2, Critical, INPUT_UA, "SQL data type names", Kind::Regex(Decoded, r#"\b(?:nvarchar|varchar2?|nchar|varbinary|xp_cmdshell|xp_dirtree|sp_password|sysadmin|db_owner)\b"#)),
    rule(942107, 2, Critical, INPUT_UA, "SQL alter or quoted statement start", Kind::Regex(Stripped, r#"['"`]\s*alter\b|^\s*\)+\s*(?:or|and|union|when|select)\b|`[^`]+`"#)),
    rule(942201, 3, Critical, INPUT, "many special characters", Kind::Check(checks::special_chars)),
    rule(942202, 3, Critical, INPUT, "quoted value", Kind::Regex(Decoded, r#"^\s*['"][^'"]*['"]\s*$"#)),
    // ---- 943 session fixation -----------------------------------------------
    rule(943001, 1, Critical, INPUT, "session fixation via cookie-setting code", Kind::Regex(Decoded, r#"\.cookie\b.*?;\W*?(?:expires|domain|path)\W*?=|\bhttp-equiv\W+set-cookie\b|\bset-cookie\s*:"#)),
    rule(943002, 1, Critical, 0, "session id parameter from another site or no Referer", Kind::Check(checks::session_id_param)),
    // ---- 944 Java -----------------------------------------------------------
    rule(944001, 1, Critical, INPUT_UA | ALL_HEADERS | PATH, "Java runtime or process class", Kind::Regex(Stripped, r#"java\s*\.\s*lang\s*\.\s*(?:runtime|processbuilder|process|system|reflect|classloader|thread)|\b(?:runtime\s*\.\s*getruntime|processbuilder)\s*(?:\(|\.)|\bgetruntime\s*\(\s*\)\s*\.\s*exec\b|\.getclass\s*\(\s*\)\s*\.\s*forname|\bclass\.forname\s*\("#)),
    rule(944002, 1, Critical, INPUT_UA | ALL_HEADERS, "Java deserialization gadget", Kind::Phrases(Decoded, lists::JAVA_GADGETS, false)),
    rule(944003, 1, Critical, INPUT_UA | ALL_HEADERS | PATH | URI, "JNDI / Log4Shell lookup", Kind::Regex(Decoded, r#"\$\{(?:[^}]{0,40}\$\{|\s*(?:jndi|ctx|env|sys|java|lower|upper|main|date|base64|log4j|spring|k8s|docker|bundle|web|sd|marker|map|event|script|url)\s*:)"#)),
    rule(944004, 1, Critical, INPUT | ALL_HEADERS, "Java serialized object", Kind::Regex(Raw, r#"(?-u:\xac\xed\x00\x05)|\brO0AB|\baced0005"#)),
    rule(944005, 1, Critical, INPUT | ALL_HEADERS | PATH, "OGNL or Spring expression", Kind::Regex(Decoded, r#"%\{\s*\(?\s*#|#_memberaccess|@ognl|#context\s*\[|\bclass\s*\.\s*module\s*\.\s*classloader|\bclass\s*\.\s*classloader\b|\bT\s*\(\s*java\.|new\s+java\.(?:io|lang|net|util)\.|\.getruntime\(\)"#)),
    rule(944006, 1, Critical, FILES | INPUT, "JSP script or upload", Kind::Regex(Decoded, r#"<%@?\s*page\b|<jsp:|\.jspx?\s*$"#)),
    rule(944007, 1, Critical, INPUT_UA | ALL_HEADERS, "Java class name", Kind::Regex(Stripped, r#"\bjava\.(?:io|lang|net|nio|util|beans|rmi)\.\w+|\bjavax\.(?:naming|script|management)\b|\b(?:com\.sun|sun\.misc|org\.apache\.commons\.collections|com\.opensymphony\.xwork2|org\.springframework)\."#)),
    rule(944102, 2, Critical, INPUT_UA | ALL_HEADERS, "Java keyword combination", Kind::Regex(Decoded, r#"\b(?:runtime|processbuilder|scriptengine|urlclassloader|objectinputstream|invoke|newinstance|getmethod|getdeclared\w+)\b"#)),
    rule(944103, 2, Critical, INPUT | ALL_HEADERS, "base64-encoded Java class name", Kind::Phrases(Raw, lists::JAVA_BASE64, false)),
];

/// The raw-byte check of US-ASCII encoded markup reads every client-filled input.
const RAW_BYTES: u16 = INPUT | ALL_HEADERS;
