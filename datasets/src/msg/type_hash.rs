//! RIHS01 type hashes (REP-2011): what ROS 2 Jazzy puts in rmw_zenoh key
//! expressions and discovery so that a subscriber only matches a publisher
//! of the same message definition.
//!
//! The hash is SHA-256 over a one-line JSON type description, built here
//! from the same `.msg` files the MCAP schemas come from: the type's fields
//! in declaration order (constants and default values left out), then every
//! nested type it reaches, each once, sorted by name. The JSON is written by
//! hand because its exact bytes (`", "` and `": "` separators, key order) are
//! the contract; a general serializer's formatting is not.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use super::schema::{definition, resolve};
use crate::error::{DatasetError, Result};

/// One field of a type description.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Field {
    name: String,
    type_id: u32,
    capacity: u64,
    string_capacity: u64,
    nested_type_name: String,
}

/// `type_description_interfaces/FieldType` ids of the primitive types.
fn primitive_id(ty: &str) -> Option<u32> {
    Some(match ty {
        "int8" => 2,
        "uint8" | "char" => 3,
        "int16" => 4,
        "uint16" => 5,
        "int32" => 6,
        "uint32" => 7,
        "int64" => 8,
        "uint64" => 9,
        "float32" => 10,
        "float64" => 11,
        "bool" => 15,
        "byte" => 16,
        "string" => 17,
        "wstring" => 18,
        _ => return None,
    })
}

fn bad(type_name: &str, line: &str, why: &str) -> DatasetError {
    DatasetError::UnknownType(format!("{type_name}: cannot read the field `{line}`: {why}"))
}

/// Fields of `pkg/Type` from its `.msg` text.
fn fields(type_name: &str, text: &str) -> Result<Vec<Field>> {
    let package = type_name.split('/').next().unwrap_or_default();
    let mut out = Vec::new();
    for raw in text.lines() {
        let line = raw.split('#').next().unwrap_or_default().trim();
        // Blank lines, comments and constants (`uint8 OK=0`) are not fields.
        if line.is_empty() || line.contains('=') && !line.contains("<=") {
            continue;
        }
        let mut words = line.split_whitespace();
        let (Some(ty), Some(name)) = (words.next(), words.next()) else {
            return Err(bad(type_name, line, "expected `TYPE NAME`"));
        };
        let (base, offset, capacity) = match ty.find('[') {
            None => (ty, 0, 0),
            Some(open) => {
                let inner =
                    ty[open + 1..].strip_suffix(']').ok_or_else(|| bad(type_name, line, "unclosed `[`"))?;
                let number = |s: &str| s.parse::<u64>().map_err(|_| bad(type_name, line, "bad array size"));
                match inner {
                    "" => (&ty[..open], 144, 0),
                    bounded if bounded.starts_with("<=") => (&ty[..open], 96, number(&bounded[2..])?),
                    fixed => (&ty[..open], 48, number(fixed)?),
                }
            }
        };
        let (base_id, string_capacity, nested) = match base.split_once("<=") {
            Some((s, bound)) if s == "string" || s == "wstring" => {
                let bound = bound.parse::<u64>().map_err(|_| bad(type_name, line, "bad string bound"))?;
                (if s == "string" { 21 } else { 22 }, bound, String::new())
            }
            Some(_) => return Err(bad(type_name, line, "only strings take a `<=` bound")),
            None => match primitive_id(base) {
                Some(id) => (id, 0, String::new()),
                None => (1, 0, full_name(&resolve(package, base))),
            },
        };
        out.push(Field {
            name: name.to_owned(),
            type_id: base_id + offset,
            capacity,
            string_capacity,
            nested_type_name: nested,
        });
    }
    if out.is_empty() {
        // rosidl gives an empty message one placeholder member.
        out.push(Field {
            name: "structure_needs_at_least_one_member".into(),
            type_id: 3,
            capacity: 0,
            string_capacity: 0,
            nested_type_name: String::new(),
        });
    }
    Ok(out)
}

/// `pkg/Type` -> `pkg/msg/Type`.
fn full_name(short: &str) -> String {
    short.replacen('/', "/msg/", 1)
}

fn write_description(out: &mut String, type_name: &str, fields: &[Field]) {
    let _ = write!(out, "{{\"type_name\": \"{type_name}\", \"fields\": [");
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(
            out,
            "{{\"name\": \"{}\", \"type\": {{\"type_id\": {}, \"capacity\": {}, \"string_capacity\": {}, \"nested_type_name\": \"{}\"}}}}",
            f.name, f.type_id, f.capacity, f.string_capacity, f.nested_type_name
        );
    }
    out.push_str("]}");
}

/// The exact JSON that is hashed, for `pkg/msg/Type`, with `lookup`
/// giving the `.msg` text of `pkg/Type`.
fn hashable_json(type_name: &str, lookup: &dyn Fn(&str) -> Result<&'static str>) -> Result<String> {
    let short = type_name.replacen("/msg/", "/", 1);
    let top = fields(&short, lookup(&short)?)?;
    // Every nested type reachable from the top, each once, sorted by full name.
    let mut referenced: BTreeMap<String, Vec<Field>> = BTreeMap::new();
    let mut stack: Vec<String> = top.iter().map(|f| f.nested_type_name.clone()).collect();
    while let Some(name) = stack.pop() {
        if name.is_empty() || referenced.contains_key(&name) {
            continue;
        }
        let short = name.replacen("/msg/", "/", 1);
        let nested = fields(&short, lookup(&short)?)?;
        stack.extend(nested.iter().map(|f| f.nested_type_name.clone()));
        referenced.insert(name, nested);
    }
    let mut out = String::from("{\"type_description\": ");
    write_description(&mut out, &full_name(&short), &top);
    out.push_str(", \"referenced_type_descriptions\": [");
    for (i, (name, fields)) in referenced.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_description(&mut out, name, fields);
    }
    out.push_str("]}");
    Ok(out)
}

fn rihs01(json: &str) -> String {
    format!("RIHS01_{:x}", Sha256::digest(json.as_bytes()))
}

/// The RIHS01 type hash of a type nines knows (`pkg/msg/Type` or `pkg/Type`),
/// e.g. `RIHS01_f49fb3ae…` for `std_msgs/msg/Header`.
pub fn type_hash(type_name: &str) -> Result<String> {
    Ok(rihs01(&hashable_json(type_name, &definition)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Published Jazzy hashes (rosidl-generated `__TYPE_HASH` constants and
    /// rmw_zenoh key expressions seen in the wild).
    const KNOWN: &[(&str, &str)] = &[
        ("builtin_interfaces/msg/Time", "b106235e25a4c5ed35098aa0a61a3ee9c9b18d197f398b0e4206cea9acf9c197"),
        ("std_msgs/msg/Header", "f49fb3ae2cf070f793645ff749683ac6b06203e41c891e17701b1cb597ce6a01"),
        ("std_msgs/msg/Empty", "20b625256f32d5dbc0d04fee44f43c41e51c70d3502f84b4a08e7a9c26a96312"),
        ("geometry_msgs/msg/Vector3", "cc12fe83e4c02719f1ce8070bfd14aecd40f75a96696a67a2a1f37f7dbb0765d"),
        ("geometry_msgs/msg/Twist", "9c45bf16fe0983d80e3cfe750d6835843d265a9a6c46bd2e609fcddde6fb8d2a"),
        (
            "sensor_msgs/msg/CompressedImage",
            "15640771531571185e2efc8a100baf923961a4d15d5569652e6cb6691e8e371a",
        ),
        ("sensor_msgs/msg/Image", "d31d41a9a4c4bc8eae9be757b0beed306564f7526c88ea6a4588fb9582527d47"),
        ("sensor_msgs/msg/PointCloud2", "9198cabf7da3796ae6fe19c4cb3bdd3525492988c70522628af5daa124bae2b5"),
        ("nav_msgs/msg/Odometry", "3cc97dc7fb7502f8714462c526d369e35b603cfc34d946e3f2eda2766dfec6e0"),
        ("diagnostic_msgs/msg/KeyValue", "d68081eaa540288c5440753baecef0c4e16e81a5f78ad68902ded5100413bb42"),
        (
            "diagnostic_msgs/msg/DiagnosticStatus",
            "b0e3e692ea2d54a8af2f4ef1930e81556a2db55216b771f8a7d2724ed47bf0e4",
        ),
        (
            "diagnostic_msgs/msg/DiagnosticArray",
            "5a8a36efb05fb25070fa0fb3810290c0e6cd4862b54a8fb975a1ee8dc55a333e",
        ),
        (
            "ackermann_msgs/msg/AckermannDrive",
            "acf287a224a947dd1b0b87d6d76cdb73f497b0237b8fc73be2173b2ebbb82c99",
        ),
        (
            "ackermann_msgs/msg/AckermannDriveStamped",
            "48ca7612a08d3bb72744fd98b71b7cf2ea24c6ad50fa4e1aa0bbad963c90d8cf",
        ),
        ("tf2_msgs/msg/TFMessage", "e369d0f05a23ae52508854b66f6aa0437f3449d652e8cbf22d5abe85d020f087"),
    ];

    #[test]
    fn standard_messages_hash_to_their_published_values() {
        let wrong: Vec<String> = KNOWN
            .iter()
            .filter_map(|(name, hash)| {
                let ours = type_hash(name).unwrap();
                (ours != format!("RIHS01_{hash}")).then(|| format!("{name}: {ours} != RIHS01_{hash}"))
            })
            .collect();
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    #[test]
    fn the_hashed_json_is_the_rosidl_form() {
        let lookup = |name: &str| -> Result<&'static str> {
            match name {
                "std_msgs/String" => Ok("# a comment\nstring data\n"),
                "std_msgs/Empty" => Ok("# nothing\n"),
                "test_msgs/Bounded" => Ok(
                    "uint8 LIMIT=3\nstring<=12[22] names\nstring[<=32] tags\nwstring<=12 w\nchar c\nstd_msgs/Empty[] empties\nint32 x 5\n",
                ),
                other => definition(other),
            }
        };
        let json = hashable_json("std_msgs/msg/String", &lookup).unwrap();
        assert_eq!(
            json,
            "{\"type_description\": {\"type_name\": \"std_msgs/msg/String\", \"fields\": [{\"name\": \"data\", \"type\": \
             {\"type_id\": 17, \"capacity\": 0, \"string_capacity\": 0, \"nested_type_name\": \"\"}}]}, \
             \"referenced_type_descriptions\": []}"
        );
        assert_eq!(rihs01(&json), "RIHS01_df668c740482bbd48fb39d76a70dfd4bd59db1288021743503259e948f6b1a18");
        assert_eq!(
            rihs01(&hashable_json("std_msgs/msg/Empty", &lookup).unwrap()),
            "RIHS01_20b625256f32d5dbc0d04fee44f43c41e51c70d3502f84b4a08e7a9c26a96312"
        );
        let f = fields("test_msgs/Bounded", lookup("test_msgs/Bounded").unwrap()).unwrap();
        let ids: Vec<(u32, u64, u64)> =
            f.iter().map(|f| (f.type_id, f.capacity, f.string_capacity)).collect();
        assert_eq!(ids, [(69, 22, 12), (113, 32, 0), (22, 0, 12), (3, 0, 0), (145, 0, 0), (6, 0, 0)]);
        assert_eq!(f[4].nested_type_name, "std_msgs/msg/Empty");
    }
}
