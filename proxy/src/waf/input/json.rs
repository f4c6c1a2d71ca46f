//! JSON bodies, walked with serde_json's streaming deserializer: no document
//! tree is built, and keys and strings without escapes are borrowed from the
//! body, so a large API payload costs little more than reading it once.
//!
//! Every key is an argument name (`ArgName`, named by its dotted path) and
//! every string leaf an argument (`Arg`, named by the path of its object
//! member; array items share their array's path). Dotted paths are built in
//! the request's arena, so an array of objects costs no heap allocation per
//! key. Booleans, nulls and numbers below 2^31 are neither inspected nor
//! counted as argument bytes: the parser has already shown they are only
//! digits, signs, a point and an exponent, and the only rule that looks at
//! numbers looks for overflow probes (`2147483648`, `4294967296`, ...).
//!
//! A key that an earlier object of the document already had under the same
//! parent (arrays of objects repeat every key) is counted but not added
//! again: it is the same input under the same name. Repeats inside one
//! object stay, so duplicate-argument rules still see them (a top-level array
//! of objects therefore no longer looks like duplicate arguments). Once the
//! input cap is reached no more names are built, which bounds the arena.
//!
//! A body that is not one document is read as NDJSON, one document a line.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{Parsed, Problem, Source, MAX_DEPTH, MAX_NAME, MAX_VARS};

impl<'r> Parsed<'r> {
    pub(super) fn json(&mut self, body: &'r [u8], truncated: bool) -> bool {
        // One document, or NDJSON: one document per line.
        let trimmed = body.trim_ascii_start();
        if (trimmed.starts_with(b"{") || trimmed.starts_with(b"[")) && walk(self, body).is_ok() {
            return true;
        }
        let mut any = false;
        for line in body.split(|&b| b == b'\n') {
            if line.trim_ascii().is_empty() {
                continue;
            }
            match walk(self, line) {
                Ok(()) => any = true,
                Err(_) if truncated => return false,
                Err(_) => {
                    self.problems.push(Problem::BodyUnparsable("json"));
                    return false;
                }
            }
        }
        any
    }
}

/// Adds the inputs of one JSON document to `p`. On a syntax error the
/// inputs added so far are taken back, so the caller can inspect the body
/// another way without counting anything twice.
pub(super) fn walk<'r>(p: &mut Parsed<'r>, doc: &'r [u8]) -> Result<(), serde_json::Error> {
    let (vars, problems) = (p.vars.len(), p.problems.len());
    let (count, bytes) = (p.arg_count, p.args_bytes);
    // One UTF-8 check of the whole document (fast, vectorised) spares the
    // parser a check per string; a document that fails it is parsed from
    // bytes, which rejects the bad string itself.
    let walked = match std::str::from_utf8(doc) {
        Ok(text) => walk_with(p, serde_json::Deserializer::from_str(text)),
        Err(_) => walk_with(p, serde_json::Deserializer::from_slice(doc)),
    };
    if walked.is_err() {
        p.vars.truncate(vars);
        p.problems.truncate(problems);
        p.arg_count = count;
        p.args_bytes = bytes;
    }
    walked
}

/// Walks the document `de` reads, to its end.
fn walk_with<'r, R: serde_json::de::Read<'r>>(
    p: &mut Parsed<'r>,
    mut de: serde_json::Deserializer<R>,
) -> Result<(), serde_json::Error> {
    // Sized for a typical API document, so the table rarely grows.
    let mut keys = Keys {
        // Seeded per process: the keys are chosen by the client.
        added: std::collections::HashMap::with_capacity_and_hasher(64, Default::default()),
        objects: 0,
    };
    Node {
        p,
        keys: &mut keys,
        path: "",
        depth: 0,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end())
}

/// Keys added so far, by (parent, key text), each with the object (numbered
/// in document order) that added it and its dotted name. The parent is its
/// dotted name's address: every name is built once in the arena and shared
/// by the values under it, so the address says which parent it is, without
/// hashing or comparing its text. Keying on the parent and the key itself,
/// not the dotted name, keeps `{"a.b":..}` apart from `{"a":{"b":..}}` and
/// names cut at [`MAX_NAME`] apart from each other.
struct Keys<'r> {
    added: std::collections::HashMap<(usize, &'r str), (u32, &'r str), foldhash::fast::RandomState>,
    objects: u32,
}

/// Numbers from here on are inputs: integer overflow probes (`2147483648`,
/// `4294967296`, ...) are what a rule looks for in numbers; smaller ones hold
/// nothing a rule can match.
const OVERFLOW_PROBE: u64 = i32::MAX as u64;

/// One value at `path`.
struct Node<'a, 'r> {
    p: &'a mut Parsed<'r>,
    keys: &'a mut Keys<'r>,
    path: &'r str,
    depth: usize,
}

impl<'r> Node<'_, 'r> {
    fn leaf(self, value: Cow<'r, [u8]>) {
        self.p.args_bytes += value.len();
        self.p.push(Source::Arg, Cow::Borrowed(self.path), value);
    }
}

impl<'de> DeserializeSeed<'de> for Node<'_, 'de> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        if self.depth > MAX_DEPTH || self.p.vars.len() >= MAX_VARS {
            d.deserialize_ignored_any(IgnoredAny)?;
            return Ok(());
        }
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.keys.objects += 1;
        let object = self.keys.objects;
        while let Some(key) = map.next_key_seed(Text)? {
            // The key itself is attacker-controlled input too.
            self.p.arg_count += 1;
            self.p.args_bytes += key.len();
            if self.p.vars.len() >= MAX_VARS {
                // Nothing more is kept (the request is refused for it), so
                // build no more names either: the arena stays bounded.
                if !self.p.problems.contains(&Problem::TooManyInputs) {
                    self.p.problems.push(Problem::TooManyInputs);
                }
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let parent = self.path.as_ptr() as usize;
            let name = match self.keys.added.get(&(parent, &*key)) {
                // An earlier object had this key here (array items): the
                // same input under the same name, not added again.
                Some(&(first, name)) if first != object => name,
                // A repeat inside one object stays (duplicate arguments).
                Some(&(_, name)) => {
                    self.p
                        .push(Source::ArgName, Cow::Borrowed(name), key_bytes(&key));
                    name
                }
                None => {
                    let name = dotted_name(self.p.arena, self.path, &key);
                    let text: &'de str = match &key {
                        Cow::Borrowed(k) => k,
                        Cow::Owned(k) => self.p.arena.alloc_str(k),
                    };
                    self.keys.added.insert((parent, text), (object, name));
                    self.p
                        .push(Source::ArgName, Cow::Borrowed(name), key_bytes(&key));
                    name
                }
            };
            map.next_value_seed(Node {
                p: &mut *self.p,
                keys: &mut *self.keys,
                path: name,
                depth: self.depth + 1,
            })?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(Node {
                p: &mut *self.p,
                keys: &mut *self.keys,
                path: self.path,
                depth: self.depth + 1,
            })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<(), E> {
        self.leaf(Cow::Borrowed(v.as_bytes()));
        Ok(())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.leaf(Cow::Owned(v.as_bytes().to_vec()));
        Ok(())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<(), E> {
        self.leaf(Cow::Owned(v.into_bytes()));
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        if v >= OVERFLOW_PROBE {
            self.leaf(Cow::Owned(
                itoa::Buffer::new().format(v).as_bytes().to_vec(),
            ));
        }
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        if v.unsigned_abs() >= OVERFLOW_PROBE {
            self.leaf(Cow::Owned(
                itoa::Buffer::new().format(v).as_bytes().to_vec(),
            ));
        }
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        if v.abs() >= OVERFLOW_PROBE as f64 {
            // Written the way serde_json writes numbers (`4294967296.0`).
            let text = serde_json::Number::from_f64(v).map_or_else(String::new, |n| n.to_string());
            self.leaf(Cow::Owned(text.into_bytes()));
        }
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

/// `path.key` (or `key` at the top), built in `arena` and cut at
/// [`MAX_NAME`] bytes: names only label inputs, so deep documents cannot make
/// every leaf carry a huge copy.
fn dotted_name<'r>(arena: &'r bumpalo::Bump, path: &str, key: &str) -> &'r str {
    let mut dotted =
        bumpalo::collections::String::with_capacity_in(path.len() + 1 + key.len(), arena);
    if !path.is_empty() {
        dotted.push_str(path);
        dotted.push('.');
    }
    dotted.push_str(key);
    let mut cut = dotted.len().min(MAX_NAME);
    while !dotted.is_char_boundary(cut) {
        cut -= 1;
    }
    dotted.truncate(cut);
    dotted.into_bump_str()
}

/// A key's text as an input value (borrowed when the document had no escapes).
fn key_bytes<'r>(key: &Cow<'r, str>) -> Cow<'r, [u8]> {
    match key {
        Cow::Borrowed(k) => Cow::Borrowed(k.as_bytes()),
        Cow::Owned(k) => Cow::Owned(k.as_bytes().to_vec()),
    }
}

/// A key: borrowed from the document unless it had escapes.
struct Text;

impl<'de> DeserializeSeed<'de> for Text {
    type Value = Cow<'de, str>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Text {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}
