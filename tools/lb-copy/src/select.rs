//! Which store paths a parsed input names: the elements `nix build` would
//! number, narrowed by `--output`, and the input annotated with what was
//! copied (for `--json`).

use std::collections::BTreeSet;

use serde_json::Value;

use crate::input::{check_store_path, store_dir, Document, Error, Wanted};

/// What a JSON element stands for.
enum Element<'a> {
    /// A store path with no output name (`"P"`, `{"path": P}`).
    Opaque(&'a str),
    /// A derivation's outputs, name to path, in the input's order.
    Outputs(Vec<(&'a str, &'a str)>),
}

fn element<'a>(v: &'a Value, at: &str, source_name: &str) -> Result<Element<'a>, Error> {
    let shape = |what: String| Error::Shape {
        source_name: source_name.to_owned(),
        what,
    };
    match v {
        Value::String(s) => Ok(Element::Opaque(s)),
        Value::Object(o) => {
            if let Some(outs) = o.get("outputs") {
                let Value::Object(outs) = outs else {
                    return Err(shape(format!("{at}: `outputs` is not an object")));
                };
                let mut list = Vec::new();
                for (name, p) in outs {
                    match p {
                        Value::String(p) => list.push((name.as_str(), p.as_str())),
                        Value::Null => {
                            return Err(shape(format!(
                                "{at}: output {name:?} has no path (was it a --dry-run?)"
                            )))
                        }
                        _ => {
                            return Err(shape(format!(
                                "{at}: output {name:?} is not a path string"
                            )))
                        }
                    }
                }
                Ok(Element::Outputs(list))
            } else if let Some(p) = o.get("path") {
                p.as_str()
                    .map(Element::Opaque)
                    .ok_or_else(|| shape(format!("{at}: `path` is not a string")))
            } else {
                Err(shape(format!(
                    "{at}: an object with neither `outputs` nor `path`"
                )))
            }
        }
        other => Err(shape(format!("{at}: unexpected {}", kind(other)))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Is this object keyed by store paths (`nix path-info --json`, 2.19+)
/// rather than a single build entry?
fn keyed_by_path(o: &serde_json::Map<String, Value>) -> bool {
    !o.contains_key("outputs") && !o.contains_key("path") && !is_versioned(o)
}

/// `nix path-info --json --json-format 2` (2.33+): a `version` number, the
/// `storeDir` and the infos keyed by base name under `info`. Store paths
/// never lack the `/` a key would need to be `version` or `info`, so no
/// keyed object is taken for one.
fn is_versioned(o: &serde_json::Map<String, Value>) -> bool {
    o.get("version").is_some_and(Value::is_u64) && o.get("info").is_some_and(Value::is_object)
}

/// The (path, info) pairs of a versioned path-info document: `storeDir`
/// (the local store when absent) joined to each base name.
fn versioned_entries<'a>(
    o: &'a serde_json::Map<String, Value>,
    store: &str,
) -> Vec<(String, &'a Value)> {
    let dir = o.get("storeDir").and_then(Value::as_str).unwrap_or(store);
    o.get("info")
        .and_then(Value::as_object)
        .map(|info| {
            info.iter()
                .map(|(base, v)| (format!("{}/{base}", dir.trim_end_matches('/')), v))
                .collect()
        })
        .unwrap_or_default()
}

/// The paths an input names, in order, as the elements `nix build` would
/// number; `selection` keeps only those outputs of derivations (empty:
/// all). `next_index` carries the numbering across inputs.
pub fn wanted(
    doc: &Document,
    source_name: &str,
    selection: &[String],
    store: &str,
    next_index: &mut usize,
    seen_outputs: &mut BTreeSet<String>,
) -> Result<Vec<Wanted>, Error> {
    let mut out = Vec::new();
    let mut push = |path: &str, output: Option<&str>, index: usize| -> Result<(), Error> {
        check_store_path(path, store).map_err(|reason| Error::NotStorePath {
            source_name: source_name.to_owned(),
            path: lb_common::text::excerpt(path),
            reason,
        })?;
        out.push(Wanted {
            path: path.to_owned(),
            index,
            output: output.map(str::to_owned),
        });
        Ok(())
    };
    match doc {
        Document::Lines(lines) => {
            for l in lines {
                push(l, None, *next_index)?;
                *next_index += 1;
            }
        }
        Document::Json(values) => {
            for (d, value) in values.iter().enumerate() {
                let doc_at = if values.len() > 1 {
                    format!("document {}, ", d + 1)
                } else {
                    String::new()
                };
                let elements: Vec<(String, &Value)> = match value {
                    Value::Array(items) => items
                        .iter()
                        .enumerate()
                        .map(|(i, v)| (format!("{doc_at}element {}", i + 1), v))
                        .collect(),
                    Value::Object(o) if keyed_by_path(o) || is_versioned(o) => {
                        let entries: Vec<(String, &Value)> = if is_versioned(o) {
                            versioned_entries(o, store)
                        } else {
                            o.iter().map(|(p, v)| (p.clone(), v)).collect()
                        };
                        for (path, info) in entries {
                            if !matches!(info, Value::Object(_) | Value::Null) {
                                return Err(Error::Shape {
                                    source_name: source_name.to_owned(),
                                    what: format!(
                                        "{doc_at}key {path:?}: value is a {}, not path info",
                                        kind(info)
                                    ),
                                });
                            }
                            push(&path, None, *next_index)?;
                            *next_index += 1;
                        }
                        continue;
                    }
                    v @ (Value::Object(_) | Value::String(_)) => {
                        vec![(format!("{doc_at}the top-level value"), v)]
                    }
                    other => {
                        return Err(Error::Shape {
                            source_name: source_name.to_owned(),
                            what: format!("{doc_at}a top-level {}", kind(other)),
                        })
                    }
                };
                for (at, v) in elements {
                    match element(v, &at, source_name)? {
                        Element::Opaque(p) => push(p, None, *next_index)?,
                        Element::Outputs(list) => {
                            for (name, p) in list {
                                seen_outputs.insert(name.to_owned());
                                if selection.is_empty() || selection.iter().any(|s| s == name) {
                                    push(p, Some(name), *next_index)?;
                                }
                            }
                        }
                    }
                    *next_index += 1;
                }
            }
        }
    }
    Ok(out)
}

/// Check every `--output` names an output some derivation has.
pub fn check_selection(selection: &[String], seen: &BTreeSet<String>) -> Result<(), Error> {
    for name in selection {
        if !seen.contains(name) {
            return Err(Error::NoSuchOutput {
                name: name.clone(),
                seen: if seen.is_empty() {
                    "none: the input has only plain store paths".to_owned()
                } else {
                    seen.iter().cloned().collect::<Vec<_>>().join(", ")
                },
            });
        }
    }
    Ok(())
}

/// The input's structure with a `copied` flag per path, for `--json`:
///
/// - a build entry gains `"copied": {"OUTPUT": bool, ...}` for the
///   selected outputs, and its `outputs` keep only those;
/// - `{"path": P, ...}` gains `"copied": bool`;
/// - a bare string `P` becomes `{"path": P, "copied": bool}`;
/// - a keyed object's value gains `"copied": bool` (`null` becomes
///   `{"copied": bool}`), and so does each value under a versioned
///   document's `info`;
/// - plain lines become an array of `{"path": P, "copied": bool}`.
///
/// Several documents in one input become one array of them.
#[must_use]
pub fn annotate(doc: &Document, selection: &[String], copied: &dyn Fn(&str) -> bool) -> Value {
    let flag = |p: &str| Value::Bool(copied(p));
    let flagged_info = |info: &Value, p: &str| {
        let mut info = match info {
            Value::Object(i) => i.clone(),
            _ => serde_json::Map::new(),
        };
        info.insert("copied".to_owned(), flag(p));
        Value::Object(info)
    };
    let path_obj = |p: &str| serde_json::json!({"path": p, "copied": copied(p)});
    let entry = |v: &Value| -> Value {
        match v {
            Value::String(p) => path_obj(p),
            Value::Object(o) => {
                let mut o = o.clone();
                if let Some(Value::Object(outs)) = o.get("outputs").cloned() {
                    let kept: serde_json::Map<String, Value> = outs
                        .into_iter()
                        .filter(|(n, _)| selection.is_empty() || selection.contains(n))
                        .collect();
                    let flags: serde_json::Map<String, Value> = kept
                        .iter()
                        .map(|(n, p)| (n.clone(), flag(p.as_str().unwrap_or_default())))
                        .collect();
                    o.insert("outputs".to_owned(), Value::Object(kept));
                    o.insert("copied".to_owned(), Value::Object(flags));
                } else if let Some(p) = o.get("path").and_then(Value::as_str) {
                    let f = flag(p);
                    o.insert("copied".to_owned(), f);
                }
                Value::Object(o)
            }
            other => other.clone(),
        }
    };
    match doc {
        Document::Lines(lines) => Value::Array(lines.iter().map(|l| path_obj(l)).collect()),
        Document::Json(values) => {
            let mut done: Vec<Value> = values
                .iter()
                .map(|value| match value {
                    Value::Array(items) => Value::Array(items.iter().map(entry).collect()),
                    Value::Object(o) if keyed_by_path(o) => Value::Object(
                        o.iter()
                            .map(|(p, info)| (p.clone(), flagged_info(info, p)))
                            .collect(),
                    ),
                    Value::Object(o) if is_versioned(o) => {
                        let dir = o
                            .get("storeDir")
                            .and_then(Value::as_str)
                            .map_or_else(store_dir, str::to_owned);
                        let mut o = o.clone();
                        if let Some(Value::Object(info)) = o.get_mut("info") {
                            for (base, v) in info.iter_mut() {
                                let p = format!("{}/{base}", dir.trim_end_matches('/'));
                                *v = flagged_info(v, &p);
                            }
                        }
                        Value::Object(o)
                    }
                    other => entry(other),
                })
                .collect();
            if done.len() == 1 {
                done.remove(0)
            } else {
                Value::Array(done)
            }
        }
    }
}
