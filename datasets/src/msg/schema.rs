//! `ros2msg` schema texts, assembled from the `.msg` files in `datasets/msg`.
//!
//! MCAP's ros2msg profile wants the top-level definition followed by every
//! type it depends on (transitively), each after a line of 80 `=` and a
//! `MSG: pkg/Type` line. Dependencies are found by reading the field types,
//! so a new `.msg` file only needs a line in [`DEFINITIONS`].

use crate::error::{DatasetError, Result};

macro_rules! definitions {
    ($($pkg:literal / $ty:literal),* $(,)?) => {
        &[$(
            (concat!($pkg, "/", $ty), include_str!(concat!("../../msg/", $pkg, "/", $ty, ".msg"))),
        )*]
    };
}

/// `pkg/Type` and the text of its `.msg` file, for every type nines knows.
const DEFINITIONS: &[(&str, &str)] = definitions![
    "builtin_interfaces" / "Time",
    "std_msgs" / "Header",
    "std_msgs" / "Empty",
    "sensor_msgs" / "CompressedImage",
    "sensor_msgs" / "Image",
    "sensor_msgs" / "CameraInfo",
    "sensor_msgs" / "RegionOfInterest",
    "sensor_msgs" / "PointCloud2",
    "sensor_msgs" / "PointField",
    "tf2_msgs" / "TFMessage",
    "geometry_msgs" / "TransformStamped",
    "geometry_msgs" / "Transform",
    "geometry_msgs" / "Vector3",
    "geometry_msgs" / "Point",
    "geometry_msgs" / "Quaternion",
    "geometry_msgs" / "Pose",
    "geometry_msgs" / "PoseWithCovariance",
    "geometry_msgs" / "Twist",
    "geometry_msgs" / "TwistWithCovariance",
    "nav_msgs" / "Odometry",
    "ackermann_msgs" / "AckermannDriveStamped",
    "ackermann_msgs" / "AckermannDrive",
    "diagnostic_msgs" / "DiagnosticArray",
    "diagnostic_msgs" / "DiagnosticStatus",
    "diagnostic_msgs" / "KeyValue",
    "nines_msgs" / "Event",
    "nines_msgs" / "ControlSource",
    "nines_msgs" / "LaneState",
    "nines_msgs" / "ModelOutput",
    "nines_msgs" / "ObjectArray",
    "nines_msgs" / "Object",
];

/// Every top-level type nines writes to drives (`pkg/msg/Type`).
pub const KNOWN_TYPES: &[&str] = &[
    "sensor_msgs/msg/CompressedImage",
    "sensor_msgs/msg/Image",
    "sensor_msgs/msg/CameraInfo",
    "sensor_msgs/msg/PointCloud2",
    "tf2_msgs/msg/TFMessage",
    "nav_msgs/msg/Odometry",
    "ackermann_msgs/msg/AckermannDriveStamped",
    "diagnostic_msgs/msg/DiagnosticArray",
    "nines_msgs/msg/Event",
    "nines_msgs/msg/ControlSource",
    "nines_msgs/msg/LaneState",
    "nines_msgs/msg/ModelOutput",
    "nines_msgs/msg/ObjectArray",
];

const PRIMITIVES: &[&str] = &[
    "bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16", "int32", "uint32",
    "int64", "uint64", "string", "wstring",
];

/// The `.msg` text of `pkg/Type`.
pub(super) fn definition(short_name: &str) -> Result<&'static str> {
    DEFINITIONS
        .iter()
        .find(|(name, _)| *name == short_name)
        .map(|(_, text)| *text)
        .ok_or_else(|| DatasetError::UnknownType(short_name.to_owned()))
}

/// Non-primitive field types of a definition, as `pkg/Type`, in order.
fn dependencies(package: &str, text: &str) -> Vec<String> {
    text.lines()
        .map(|line| line.split('#').next().unwrap_or_default().trim())
        .filter(|line| !line.is_empty())
        .filter_map(|line| line.split_whitespace().next())
        .map(|ty| ty.split(['[', '<']).next().unwrap_or(ty))
        .filter(|ty| !PRIMITIVES.contains(ty))
        .map(|ty| resolve(package, ty))
        .collect()
}

/// A field's message type as `pkg/Type`, as a `.msg` file of `package` names it.
pub(super) fn resolve(package: &str, ty: &str) -> String {
    match ty {
        "Header" => "std_msgs/Header".to_owned(),
        t if t.contains('/') => t.to_owned(),
        t => format!("{package}/{t}"),
    }
}

/// The full `ros2msg` schema text for `type_name` (`pkg/msg/Type` or `pkg/Type`).
pub fn schema_text(type_name: &str) -> Result<String> {
    let short = type_name.replacen("/msg/", "/", 1);
    let mut out = definition(&short)?.trim_end().to_owned();
    out.push('\n');
    let mut seen = vec![short.clone()];
    let mut stack = vec![short];
    // Depth-first, each dependency once, in order of first use.
    let mut order = Vec::new();
    while let Some(current) = stack.pop() {
        let package = current.split('/').next().unwrap_or_default().to_owned();
        let deps = dependencies(&package, definition(&current)?);
        for dep in deps.into_iter().rev() {
            if !seen.contains(&dep) {
                seen.push(dep.clone());
                stack.push(dep.clone());
                order.push(dep);
            }
        }
    }
    for dep in order {
        out.push_str(&"=".repeat(80));
        out.push_str("\nMSG: ");
        out.push_str(&dep);
        out.push('\n');
        out.push_str(definition(&dep)?.trim_end());
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_type_resolves_its_dependencies() {
        for ty in KNOWN_TYPES {
            let text = schema_text(ty).unwrap();
            assert!(text.ends_with('\n'));
        }
    }

    #[test]
    fn odometry_lists_each_dependency_once() {
        let text = schema_text("nav_msgs/msg/Odometry").unwrap();
        for dep in [
            "std_msgs/Header",
            "builtin_interfaces/Time",
            "geometry_msgs/PoseWithCovariance",
            "geometry_msgs/Pose",
            "geometry_msgs/Point",
            "geometry_msgs/Quaternion",
            "geometry_msgs/TwistWithCovariance",
            "geometry_msgs/Twist",
            "geometry_msgs/Vector3",
        ] {
            assert_eq!(text.matches(&format!("MSG: {dep}\n")).count(), 1, "{dep}");
        }
        assert!(text.starts_with("std_msgs/Header header\n"));
        assert_eq!(text.matches(&"=".repeat(80)).count(), 9);
    }

    #[test]
    fn unknown_types_are_named() {
        let err = schema_text("foo_msgs/msg/Bar").unwrap_err().to_string();
        assert!(err.contains("foo_msgs/Bar"), "{err}");
    }
}
