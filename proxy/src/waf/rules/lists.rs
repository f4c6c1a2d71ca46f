//! Word lists and the larger patterns built from them.

/// Security scanners and exploit tools, as they name themselves in `User-Agent`.
pub(crate) static SCANNERS: &[&str] = &[
    "nikto",
    "sqlmap",
    "nmap",
    "masscan",
    "zgrab",
    "nuclei",
    "nessus",
    "openvas",
    "acunetix",
    "netsparker",
    "arachni",
    "havij",
    "w3af",
    "dirbuster",
    "gobuster",
    "wfuzz",
    "ffuf",
    "feroxbuster",
    "whatweb",
    "wpscan",
    "joomscan",
    "skipfish",
    "zmeu",
    "morfeus",
    "paros",
    "webinspect",
    "appscan",
    "commix",
    "jaeles",
    "xsstrike",
    "dirsearch",
    "fimap",
    "bsqlbf",
    "pangolin",
    "sqlninja",
    "absinthe",
    "webshag",
    "mysqloit",
    "nsauditor",
    "x-scan",
    "grendel-scan",
    "wapiti",
    "vega",
    "burpcollaborator",
    "interactsh",
    "qualys",
    "metasploit",
    "zap",
    "owasp zap",
    "brutus",
    "hydra",
    "sf-scanner",
    "cgichk",
    "nasl",
    "webvulnscan",
    "httpx",
    "subfinder",
    "katana",
    "naabu",
    "l9explore",
    "l9tcpid",
    "zmap",
    "censysinspect",
    "netlab360",
    "dotdotpwn",
    "struts-pwn",
    "log4j-scan",
    "ysoserial",
];

/// Request headers only scanners send.
pub(crate) static SCANNER_HEADERS: &[&str] = &[
    "acunetix-product",
    "acunetix-scanning-agreement",
    "acunetix-user-agreement",
    "x-wipp",
    "x-scan-memo",
    "x-request-memo",
    "x-ray-scan",
];

/// Operating system and application files read through inclusion bugs.
pub(crate) static SENSITIVE_FILES: &[&str] = &[
    "etc/passwd",
    "etc/shadow",
    "etc/master.passwd",
    "etc/group",
    "etc/gshadow",
    "etc/sudoers",
    "etc/crontab",
    "etc/hostname",
    "etc/security/",
    "etc/ssh/",
    "etc/apache2/",
    "etc/httpd/",
    "etc/nginx/",
    "etc/mysql/",
    "etc/php",
    "etc/profile",
    "etc/environment",
    "etc/resolv.conf",
    "etc/fstab",
    "etc/hosts.allow",
    "etc/hosts.deny",
    "etc/inittab",
    "etc/os-release",
    "etc/redhat-release",
    "etc/debian_version",
    "etc/letsencrypt/",
    "proc/self/",
    "proc/version",
    "proc/cpuinfo",
    "proc/meminfo",
    "proc/mounts",
    "proc/net/",
    "proc/sched_debug",
    "proc/1/",
    "boot.ini",
    "win.ini",
    "system.ini",
    "windows/system32",
    "winnt/system32",
    "system32/config",
    "system32/drivers",
    "windows/repair",
    "inetpub/",
    ".htaccess",
    ".htpasswd",
    "httpd.conf",
    "apache2.conf",
    "nginx.conf",
    "php.ini",
    "php-fpm.conf",
    "my.cnf",
    "wp-config.php",
    "configuration.php",
    "localsettings.php",
    "config.inc.php",
    "web.config",
    "applicationhost.config",
    "machine.config",
    ".ssh/",
    "id_rsa",
    "id_dsa",
    "id_ecdsa",
    "id_ed25519",
    "authorized_keys",
    "known_hosts",
    ".bash_history",
    ".bashrc",
    ".bash_profile",
    ".zsh_history",
    ".zshrc",
    ".mysql_history",
    ".psql_history",
    ".python_history",
    ".viminfo",
    ".git/",
    ".gitconfig",
    ".git-credentials",
    ".svn/",
    ".hg/",
    ".aws/credentials",
    ".aws/config",
    ".docker/config.json",
    ".kube/config",
    "var/run/secrets",
    ".npmrc",
    ".pypirc",
    ".netrc",
    ".pgpass",
    "boot/grub",
    "var/log/apache",
    "var/log/httpd",
    "var/log/nginx",
    "var/log/auth.log",
    "var/log/syslog",
    "var/log/messages",
    "var/mail/",
    "var/spool/cron",
    "usr/local/apache",
    "/.env",
    "global.asa",
    "database.yml",
    "secrets.yml",
    "credentials.xml",
    "settings.py",
    "server.xml",
    "tomcat-users.xml",
    "web-inf/web.xml",
    "meta-inf/",
    "jboss-web.xml",
    "docker-compose.yml",
    "dockerfile",
    ".dockerenv",
    "etc/shells",
    "/sys/class",
    "/sys/kernel",
    "/sys/devices",
    "/sys/firmware",
    "/sys/module",
    ".docker/",
    "backup.sql",
    "dump.sql",
];

/// Paths nobody should fetch from a web server.
pub(crate) static RESTRICTED_PATHS: &[&str] = &[
    "/.git/",
    "/.git",
    "/.svn/",
    "/.hg/",
    "/.bzr/",
    "/cvs/",
    "/.env",
    "/.htaccess",
    "/.htpasswd",
    "/.ds_store",
    "/web.config",
    "/wp-config",
    "/.aws/",
    "/.ssh/",
    "/proc/",
    "/sys/class",
    "/sys/kernel",
    "/sys/devices",
    "/sys/block",
    "/sys/firmware",
    "/sys/fs",
    "/sys/module",
    "/sys/power",
    "/sys/bus",
    "/etc/passwd",
    "/etc/shadow",
    "/@fs/",
    "backup.sql",
    "dump.sql",
    "database.sql",
    "db.sql",
    "/.bash_history",
    "/.bashrc",
    "/.profile",
    "/.vscode/",
    "/.idea/",
    "/.npmrc",
    "/.dockerenv",
    "/.docker/",
    "/.kube/",
    "/id_rsa",
    "/.netrc",
    "/.pgpass",
    "/@id/",
    "/@vite/env",
    "/.mysql_history",
    "/web-inf/",
    "/meta-inf/",
    "/.well-known/../",
    "/.terraform",
    "terraform.tfstate",
    "/.circleci/",
    "/.gitlab-ci",
    "/.travis.yml",
    "/phpinfo.php",
    "/.user.ini",
    "/php.ini",
    "/.config/",
    "/.local/",
    "/.cache/",
];

/// Unix commands whose names are not English words: after any separator
/// (`;`, `|`, `&`, newline, backtick, `$(`) they mean a command.
macro_rules! unix_commands {
    () => {
        "(?:whoami|uname|ifconfig|netstat|ncat|netcat|nc|socat|wget|bash|zsh|ksh|csh|tcsh|dash|busybox|awk|gawk|mawk|nawk|sed|xargs|chmod|chown|chgrp|rm|cp|mv|mkdir|rmdir|ls|cat|tac|nl|base64|base32|xxd|od|hexdump|tee|dd|tar|gzip|gunzip|zcat|zless|zmore|bzip2|bunzip2|bzcat|xz|unxz|xzcat|unzip|7z|7za|traceroute|tracepath|nslookup|pkill|killall|crontab|sudo|su|passwd|useradd|adduser|usermod|userdel|groupadd|umount|printenv|nohup|telnet|ssh|scp|sftp|ftp|tftp|rsync|openssl|gcc|cc|c89|c99|clang|vi|vim|emacs|pico|grep|egrep|fgrep|zgrep|rgrep|wc|ldd|strace|ltrace|gdb|systemctl|journalctl|kubectl|mkfifo|mknod|chattr|lsattr|iptables|nmap|hping3|hostname|whois|lastlog|pwd|uptime|lsof|lsblk|fdisk|dmesg|sysctl|modprobe|insmod|rmmod|lsmod|shred|lynx|w3m|aria2c|axel|lwp-download|lwp-request|lwp-mirror|jq|tmux|getent|readlink|realpath|mktemp|pgrep|chroot|setsid|unshare|nsenter|pkexec|doas|visudo|python[23]?(?:\\.\\d+)*|perl5?|php[5-8]?|ruby|node|nodejs|lua(?:\\d\\.\\d)?|tclsh|wish|ash|env|ps|id|sh|curl|ping|ping6|dig|nohup|sleep|echo|printf|uniq|sort|cut|tr|rev|head|tail|less|more|find|kill|diff|cmp|column|fold|bridge|expect|screen|watch|finger|mail|sendmail|mutt|last|who|top|htop|ip|ss|arp|route|file|stat|locate|which|whereis|touch|ln|source|export|exec|eval|time|at|set|unset|alias|type|make|install|join|look|paste|split|comm|csplit|expand|unexpand|fmt|pr|ptx|tsort|od|strings|df|du|free|w|mount)"
    };
}

/// Command words that are also ordinary English: only glued to a separator
/// (`;ls`, `|more`) at paranoia 1, since prose puts a space after `;`.
macro_rules! english_commands {
    () => {
        "(?:cat|tar|dash|wc|tee|cc|python[23]?(?:\\.\\d+)*|perl5?|php[5-8]?|ruby|node|nodejs|lua|env|ps|id|curl|ping|dig|sleep|echo|printf|uniq|sort|cut|tr|rev|head|tail|less|more|find|kill|diff|cmp|column|fold|bridge|expect|screen|watch|finger|mail|last|who|top|ip|ss|arp|route|file|stat|locate|which|touch|ln|source|export|exec|eval|time|at|set|unset|type|make|install|join|look|paste|split|comm|expand|fmt|pr|strings|df|du|free|w|mount|nohup)"
    };
}

/// A command word right after a separator, followed by the end, a space or
/// shell punctuation. Non-English command names only; see [`UNIX_GLUED`].
pub(crate) const UNIX_AFTER_SEPARATOR: &str = concat!(
    r"(?:[;|&\n]|\$\(|\|\||&&|^\s*\(|\{)\s*(?:(?:time|strace|nohup|nice|sudo|env|timeout|exec|command|builtin|xargs)\s+)?",
    "(?:whoami|uname|ifconfig|netstat|ncat|netcat|nc|socat|wget|bash|zsh|ksh|csh|tcsh|busybox|awk|gawk|mawk|nawk|sed|xargs|chmod|chown|chgrp|rm|cp|mv|mkdir|rmdir|ls|tac|nl|base64|base32|xxd|hexdump|dd|gzip|gunzip|zcat|bzip2|bunzip2|bzcat|xz|unxz|xzcat|unzip|7z|traceroute|nslookup|pkill|killall|crontab|sudo|su|passwd|useradd|adduser|usermod|userdel|groupadd|umount|printenv|telnet|ssh|scp|sftp|ftp|tftp|rsync|openssl|gcc|c89|c99|clang|vi|vim|emacs|grep|egrep|fgrep|zgrep|ldd|strace|ltrace|gdb|systemctl|journalctl|kubectl|mkfifo|mknod|chattr|iptables|nmap|hostname|whois|lastlog|pwd|uptime|lsof|dmesg|sysctl|modprobe|insmod|shred|lynx|w3m|aria2c|lwp-download|lwp-request|getent|readlink|mktemp|pgrep|chroot|setsid|nsenter|pkexec|doas|sh|ansible(?:-[a-z]+)?|chef-[a-z]+|cscli|visudo|rmt(?:-[a-z]+)?|flock|cpulimit|zstdcat|zstd|bsdtar|lastlogin|aptitude|apt-get|dpkg|rpm|yum|dnf|htop|irb|puppet|terraform|docker|podman|crictl|runc|systemd-run|setcap|getcap|aa-[a-z]+|perf|strace|ltrace|trap|xterm|nohup|stdbuf|ionice|taskset|unbuffer)",
    r"(?:\s|$|[<>|;&`)}])",
    // An English-looking command word after a separator, when its argument
    // looks like a shell argument (an option, a path, a variable).
    r"|(?:[;|&\n]|\$\(|\|\||&&)\s*",
    english_commands!(),
    r"\s+(?:-{1,2}[a-z]|[/~$]|\.{1,2}/)"
);

/// An English-looking command word glued to a separator: `;ps`, `|more`, `` `id` ``.
pub(crate) const UNIX_GLUED: &str = concat!(
    r"(?:[;|]|\$\(|&&|\|\|)",
    english_commands!(),
    r"(?:\s*$|\s+(?:-{1,2}[a-z]|[/~$])|\s*[<>|;&`)])"
);

/// A command at the very start of a value, followed by something only a
/// shell argument looks like (so that the search "python tutorial" passes
/// and "python -c ..." does not); a few commands that take no argument count
/// on their own.
pub(crate) const UNIX_AT_START: &str = concat!(
    r"^\s*(?:(?:time|strace|nohup|nice|sudo|timeout)\s+(?:sh|bash|ifconfig|whoami|id|uname|bsdtar|\S+\s+-c)\b|ansible(?:-[a-z]+)?\b|chef-[a-z]+\b|cscli\b|visudo\b|zstdcat\b|perf\s+-|aa-[a-z]+\s)",
    r"|^\s*",
    unix_commands!(),
    r"\s+(?:-{1,2}[a-z0-9]|[/~$]|\.{1,2}/|\S*[|`<>])",
    r"|^\s*(?:whoami|ifconfig|ipconfig|uname|netstat|printenv|lsof|dmesg|getent|lastlog)\s*$"
);

/// Any command word after a separator and a space (paranoia 2: prose does this).
pub(crate) const UNIX_WORDS_AFTER_SEPARATOR: &str = concat!(
    r"(?:[;|&`\n]|\$\(|\|\||&&)\s*",
    unix_commands!(),
    r"(?:\s|$|[<>|;&`)])"
);

/// Windows commands after a separator.
pub(crate) const WINDOWS_AFTER_SEPARATOR: &str = concat!(
    r"(?:[;&|`\n]|\$\(|^\s*\()\s*",
    r"(?:cmd(?:\.exe)?\s*/[ck]|powershell|pwsh|regedit|reg(?:\.exe)?\s+(?:add|delete|query|save|export|import|load)|mshta|certutil|bitsadmin|rundll32|regsvr32|wmic|cscript|wscript|schtasks|vssadmin|bcdedit|bcdboot|net1?\s+(?:user|localgroup|group|share|use|view|accounts|session|start|stop)|netsh|nltest|ntdsutil|icacls|cacls|takeown|tasklist|taskkill|systeminfo|ipconfig|attrib|diskpart|dism|esentutl|findstr|forfiles|fsutil|makecab|msiexec|msbuild|installutil|odbcconf|regasm|regsvcs|cmstp|wevtutil|xcopy|robocopy|shutdown|qwinsta|cmdkey|pnputil|mavinject|presentationhost|sc\s+(?:create|config|start|stop|query|delete)|type\s+\S*[\\/]|del\s+\S*[\\/]|dir\s+[a-z]:|copy\s+\S*[\\/]|start\s+\S*[\\/])",
    r"(?:\s|$|[<>|/.])"
);

/// PowerShell cmdlets and invocations.
pub(crate) const POWERSHELL: &str = r#"\b(?:invoke-(?:webrequest|expression|command|restmethod|item|wmimethod|shellcode|mimikatz|obfuscation)|new-object\s+(?:-typename\s+)?(?:system\.)?net\.(?:webclient|sockets)|start-(?:process|bitstransfer|job)|\.download(?:string|file|data)\s*\(|get-(?:wmiobject|ciminstance|process|childitem|content|itemproperty|credential|localuser)\b|set-(?:executionpolicy|content|itemproperty|mppreference)\b|add-mppreference|(?:powershell|pwsh)(?:\.exe)?(?:\s+-\w+|\s+[a-z]:\\|\s+\S+\.ps1)|-(?:encodedcommand|executionpolicy)\s+\S|\[system\.convert\]::frombase64string|frombase64string\s*\(|\[system\.(?:reflection|io|net|diagnostics)\.)"#;

/// PHP configuration directives set through arguments (`allow_url_include=1`).
pub(crate) const PHP_INI: &str = r#"^\s*(?:allow_url_(?:include|fopen)|auto_(?:prepend|append)_file|disable_(?:functions|classes)|open_basedir|engine|extension|zend_extension|opcache\.[a-z_.]+|mbstring\.[a-z_.]+|include_path|safe_mode\w*|register_globals|display_errors|error_log|log_errors|file_uploads|upload_tmp_dir|sendmail_path|memory_limit|max_execution_time|short_open_tag|expose_php|enable_dl|user_ini\.filename|pcre\.(?:backtrack|recursion|jit)\w*|assert\.\w+|phar\.\w+|session\.save_path|doc_root|user_dir|mail\.\w+)\s*="#;

/// PHP functions attackers call; distinctive names, so no word boundary is
/// needed on the left (`FOOcall_user_func()` is still a call).
pub(crate) const PHP_FUNCTIONS: &str = r#"(?:base64_decode|bzdecompress|call_user_func(?:_array)?|create_function|shell_exec|proc_open|pcntl_exec|file_get_contents|file_put_contents|gzinflate|gzuncompress|gzdecode|str_rot13|preg_replace|unserialize|phpinfo|fsockopen|pfsockopen|curl_exec|move_uploaded_file|show_source|highlight_file|ini_set|ini_get_all|register_shutdown_function|register_tick_function|escapeshellcmd|escapeshellarg|convert_uuencode|posix_\w+|proc_nice|proc_terminate|hex2bin|array_map|array_filter|array_walk|usort|uasort|uksort|iterator_apply|stream_socket_client|stream_get_contents|get_defined_vars|getenv|putenv|apache_setenv|symlink|tempnam|tmpfile|set_include_path|parse_str|extract)\s*\(|\b(?:passthru|popen|assert|readfile|fpassthru|fopen|fwrite|fputs|unlink|system|exec|eval|include|require|include_once|require_once)\s*\(\s*(?:['"$\)]|\w+\s*\()"#;

/// PHP calls hidden by comments or line breaks between the name and the
/// parenthesis, or with a literal argument (`chr(123)`).
pub(crate) const PHP_CALL_EVASION: &str = r#"\b(?:eval|exec|system|assert|passthru|popen|shell_exec|pcntl_exec|chr|ord|include|require|base64_decode|gzinflate|str_rot13|create_function|call_user_func|unserialize|file_get_contents|readfile|phpinfo|chroot|symlink|checkdate|array_map|preg_replace)(?:\s|/\*.*?\*/|#[^\n]*\n|//[^\n]*\n)*\(\s*(?:\d|['"$]|\))"#;

/// PHP function families at paranoia 2 (names followed by a parenthesis).
pub(crate) static PHP_FUNCTION_PHRASES: &[&str] = &[
    "array_diff(",
    "array_diff (",
    "date_add(",
    "gethostbyname(",
    "ldap_get_entries(",
    "pg_enter_pipeline_mode",
    "odbc_connection_string",
    "sodium_crypto_",
    "tidy_parse_string",
    "zend_test_",
    "filemtime(",
    "gethostbynamel(",
    "mb_send_mail(",
    "proc_get_status(",
];

/// SQL functions seen in injections; distinctive enough for paranoia 1.
pub(crate) const SQL_FUNCTIONS: &str = r#"\b(?:extractvalue|updatexml|load_file|find_in_set|group_concat|concat_ws|benchmark|pg_sleep|xmltype|randomblob|zeroblob|load_extension|substring_index|make_set|export_set|name_const|char_length|character_length|unhex|substr|substring|instr|charindex|is_srvrolemember|has_dbaccess|ifnull|nullif|json_extract|json_keys|sqlite_version|utl_inaddr\.get_host_\w+|dbms_pipe\.receive_message|dbms_xdbutil_int\.\w+|ctxsys\.\w+|sys\.fn_\w+|geometrycollection|multipoint|multilinestring|multipolygon|linestring|polygon|from_base64|to_base64|aes_decrypt|des_decrypt|master_pos_wait|get_lock|release_lock|rlike|elt|octet_length|bit_length|quotename|pg_read_file|pg_ls_dir|lo_import|lo_export|current_setting|set_config|dblink\w*|convert_from|chr|string_agg|array_to_string|xp_\w+)\s*\(|\bif\s*\(\s*[\w@(]+\s*(?:[=<>!]|like\b|in\b)|\bchar\s*\(\s*\d|\bconcat\s*\(\s*(?:0x|char\s*\(|@@|['"]|\w+\s*\()|\bascii\s*\(\s*(?:substr|mid|\()|\b(?:mid|left|right)\s*\(\s*(?:\(|@@|user|database|version)|\bfloor\s*\(\s*rand\s*\(|\bexp\s*\(\s*~"#;

/// SQL functions whose names are also English words (paranoia 2).
pub(crate) const SQL_WORD_FUNCTIONS: &str = r#"\b(?:abs|ascii|bin|cast|char|chr|coalesce|concat|convert|count|cot|current_\w+|exp|floor|hex|if|iif|instr|isnull|lcase|left|length|lower|ltrim|mid|now|ord|position|pow|power|rand|repeat|replace|reverse|right|round|rpad|rtrim|sign|sin|space|sqrt|substr\w*|sum|trim|ucase|upper|user|version|md5|sha1|sha2|uuid|database|schema)\s*\("#;

/// Classes used in Java deserialization gadget chains.
pub(crate) static JAVA_GADGETS: &[&str] = &[
    "clonetransformer",
    "forclosure",
    "instantiatefactory",
    "instantiatetransformer",
    "invokertransformer",
    "prototypeclonefactory",
    "prototypeserializationfactory",
    "whileclosure",
    "chainedtransformer",
    "constanttransformer",
    "lazymap",
    "templatesimpl",
    "annotationinvocationhandler",
    "jdbcrowsetimpl",
    "java.beans.xmldecoder",
    "bsh.interpreter",
    "groovy.util.expando",
    "badattributevalueexpexception",
    "com.sun.rowset",
    "org.apache.xalan",
    "jndirefforwardingdatasource",
    "ysoserial",
    "commonscollections",
    "xmldecoder",
    "objectinputstream",
    "java.rmi.server",
    "sun.rmi",
    "javax.naming.initialcontext",
    "java.lang.runtime",
    "java.lang.processbuilder",
    "org.codehaus.groovy.runtime",
    "com.mchange.v2.c3p0",
    "org.springframework.beans.factory",
];

/// `java.lang.` in base64 at each of the three alignments.
pub(crate) static JAVA_BASE64: &[&str] = &["amF2YS5sYW5nL", "phdmEubGFuZy", "qYXZhLmxhbmcu"];

/// Session id parameter names (session fixation when they arrive in arguments).
pub(crate) static SESSION_PARAMS: &[&str] = &[
    "next-auth.session-token",
    "__secure-next-auth.session-token",
    "meteor_login_token",
    "play_session",
    "sails.sid",
    "koa.sess",
    "koa:sess",
    "shiny-token",
    "weblogic_session",
    "jsessionid",
    "phpsessid",
    "aspsessionid",
    "asp.net_sessionid",
    "laravel_session",
    "connect.sid",
    "_flask_session",
    "sessionid",
    "session_id",
    "sessid",
    "cfid",
    "cftoken",
    "_session_id",
    "rack.session",
    "ci_session",
    "cakephp",
    "symfony",
    "_rails_session",
    "express.sid",
    "jsession",
    "sess_id",
    "django_session",
    "aspxauth",
    ".aspxauth",
    "wordpress_logged_in",
    "pyramid_session",
    "beaker.session.id",
    "zope_session",
];

/// File names an upload must not have (they configure or take over the server).
pub(crate) static RESTRICTED_UPLOADS: &[&str] = &[
    ".htaccess",
    ".htpasswd",
    ".user.ini",
    "php.ini",
    "web.config",
    "settings.php",
    "config.php",
    "wp-config.php",
    "configuration.php",
    "localsettings.php",
    ".env",
    ".boto",
    ".bashrc",
    ".bash_profile",
    ".profile",
    ".zshrc",
    "authorized_keys",
    "id_rsa",
    ".gitconfig",
    ".npmrc",
    ".pypirc",
    ".netrc",
    ".pgpass",
    "config.yml",
    "config.yaml",
    "database.yml",
    "secrets.yml",
    "credentials",
    "crontab",
    "mtrr",
    "passwd",
    "shadow",
    "sudoers",
    "applicationhost.config",
    "global.asax",
    "web.xml",
    ".ssh",
    ".git",
];

/// SQL function names followed directly by a parenthesis (`hex(`, `md5(`),
/// or a value that is nothing but such a call's start. `(s)` plurals
/// ("user(s)") are not calls.
pub(crate) const SQL_CALLS: &str = r#"\b(?:coalesce|compress|uncompress|concat|cos|sin|tan|cot|decode|encode|hex|unhex|insert|trim|ltrim|rtrim|md5|sha1|sha2|mid|ord|pow|power|rand|sysdate|strcmp|starts_with|unistr|sqlite_\w+|substr|ascii|lower|upper|repeat|reverse|soundex|now|abs|floor|ceil|ceiling|round|sleep|benchmark|if|iif|isnull|nullif|ifnull|greatest|least|position|locate|instr|lpad|rpad|elt|oct|conv|crc32|old_password|des_encrypt|aes_encrypt|load_file|last_insert_id|row_count|found_rows|connection_id|randomblob|typeof|zeroblob|likelihood|char_length|octet_length|bit_length|make_set|export_set|current_user|session_user|system_user|collation|charset|coercibility)\((?:[^s)]|s[^)]|$|\))|^\s*(?:coalesce|compress|uncompress|concat|cos|sin|decode|encode|hex|insert|trim|rtrim|ltrim|md5|mid|ord|pow|rand|sysdate|strcmp|ascii|char|cast|convert|substring|substr|sleep|benchmark|version|database|user)\s*\("#;
