//! Tool schemas rewritten into the portable subset of JSON Schema that every MCP client and
//! model provider accepts. schemars writes a nullable field as `"type": ["string", "null"]` and
//! integer widths as non-standard formats (`"format": "uint32"`): legal JSON Schema, but a
//! client that maps schemas onto a single-`type` dialect (the OpenAPI subset of some function-
//! calling APIs) rejects the tool or drops the constraint. Here a nullable type becomes
//! `anyOf: [{"type": T, …its constraints}, {"type": "null"}]` and only the formats JSON Schema
//! defines are kept. The rewrite runs once, when the tool router is built.

use serde_json::{Map, Value};

/// `format` values JSON Schema 2020-12 defines; any other (schemars' `uint32`, `int64`,
/// `double`, …) is dropped, the numeric bounds schemars writes beside it stay.
const STANDARD_FORMATS: &[&str] = &[
    "date-time",
    "date",
    "time",
    "duration",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uuid",
    "uri-template",
    "json-pointer",
    "relative-json-pointer",
    "regex",
];

/// Keywords that constrain one type and therefore move into the non-null `anyOf` branch;
/// annotations (`description`, `default`, `title`, …) stay on the property.
const TYPE_KEYWORDS: &[&str] = &[
    "format",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "pattern",
    "items",
    "prefixItems",
    "minItems",
    "maxItems",
    "uniqueItems",
    "properties",
    "required",
    "additionalProperties",
    "enum",
];

/// Rewrites `schema` (a whole tool input or output schema) in place.
pub fn make_portable(schema: &mut Map<String, Value>) {
    rewrite(schema);
}

fn rewrite(node: &mut Map<String, Value>) {
    if let Some(Value::String(format)) = node.get("format")
        && !STANDARD_FORMATS.contains(&format.as_str())
    {
        node.remove("format");
    }
    split_nullable_type(node);
    for value in node.values_mut() {
        match value {
            Value::Object(child) => rewrite(child),
            Value::Array(items) => {
                for item in items {
                    if let Value::Object(child) = item {
                        rewrite(child);
                    }
                }
            }
            _ => {}
        }
    }
}

/// `"type": [T, "null"]` → `anyOf: [{type: T, …}, {type: "null"}]`; `"type": [T]` → `T`.
fn split_nullable_type(node: &mut Map<String, Value>) {
    let Some(Value::Array(types)) = node.get("type") else { return };
    let types: Vec<String> = types.iter().filter_map(Value::as_str).map(str::to_owned).collect();
    let nullable = types.iter().any(|t| t == "null");
    let others: Vec<&String> = types.iter().filter(|t| *t != "null").collect();
    node.remove("type");
    if !nullable && others.len() == 1 {
        node.insert("type".into(), Value::String(others[0].clone()));
        return;
    }
    let mut constraints = Map::new();
    for keyword in TYPE_KEYWORDS {
        if let Some(v) = node.remove(*keyword) {
            constraints.insert((*keyword).to_owned(), v);
        }
    }
    let mut branches: Vec<Value> = others
        .iter()
        .map(|t| {
            let mut branch = constraints.clone();
            branch.insert("type".into(), Value::String((*t).clone()));
            Value::Object(branch)
        })
        .collect();
    if nullable {
        branches.push(serde_json::json!({"type": "null"}));
    }
    node.insert("anyOf".into(), Value::Array(branches));
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn portable(v: Value) -> Value {
        let Value::Object(mut m) = v else { unreachable!("test schemas are objects") };
        make_portable(&mut m);
        Value::Object(m)
    }

    #[test]
    fn nullable_types_become_any_of_and_keep_their_constraints() {
        let schema = json!({"type": "object", "properties": {
            "limit": {"type": ["integer", "null"], "format": "uint32", "minimum": 0,
                      "description": "Results per page"},
            "cursor": {"type": ["string", "null"], "default": null},
            "when": {"type": "string", "format": "date-time"},
            "n": {"type": "integer", "format": "int64"},
        }});
        assert_eq!(
            portable(schema),
            json!({"type": "object", "properties": {
                "limit": {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "null"}],
                          "description": "Results per page"},
                "cursor": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": null},
                "when": {"type": "string", "format": "date-time"},
                "n": {"type": "integer"},
            }})
        );
    }

    #[test]
    fn definitions_and_array_items_are_rewritten_too() {
        let schema = json!({"$defs": {"Page": {"properties": {
            "next": {"type": ["string", "null"]},
            "list": {"type": ["array", "null"], "items": {"type": ["boolean", "null"]}},
        }}}});
        let out = portable(schema);
        assert!(!out.to_string().contains("[\"string\",\"null\"]"), "{out}");
        assert_eq!(
            out.pointer("/$defs/Page/properties/list/anyOf/0/items"),
            Some(&json!({"anyOf": [{"type": "boolean"}, {"type": "null"}]}))
        );
    }
}
