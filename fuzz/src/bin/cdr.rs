//! CDR payloads: each message type the drives carry decodes or refuses them,
//! and decoded clouds and camera infos are checked as the readers check them.

use nines_datasets::calib::CameraModel;
use nines_datasets::cdr;
use nines_datasets::msg::{AckermannDriveStamped, CameraInfo, Odometry, PointCloud2, TfMessage};
use nines_datasets::pointcloud::from_point_cloud2;

fn main() {
    afl::fuzz!(|bytes: &[u8]| {
        let _ = cdr::decode::<PointCloud2>(bytes).map(|c| from_point_cloud2(&c, "fuzz"));
        let _ = cdr::decode::<CameraInfo>(bytes).map(|i| CameraModel::from_camera_info(&i, "fuzz"));
        let _ = cdr::decode::<Odometry>(bytes);
        let _ = cdr::decode::<TfMessage>(bytes);
        let _ = cdr::decode::<AckermannDriveStamped>(bytes);
    });
}
