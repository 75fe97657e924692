//! Importers: public datasets into nines drives.

mod kitti;
mod kitti_object;
mod kitti_raw;

pub use kitti::{KITTI_CALIB_METADATA, KittiLabel, parse_labels};
pub use kitti_object::{ObjectImport, import_kitti_object};
pub use kitti_raw::{RawImport, import_kitti_raw};
