//! MCAP drives: opened, every message read past damage and decoded where its
//! type is known, then recovered.

use nines_datasets::calib::CameraModel;
use nines_datasets::drive::{DriveReader, ReadFilter, recover};
use nines_datasets::msg::{CameraInfo, PointCloud2, TfMessage};
use nines_datasets::pointcloud::from_point_cloud2;

fn main() {
    let input = nines_fuzz::scratch("drive.mcap");
    let output = nines_fuzz::scratch("recovered.mcap");
    afl::fuzz!(|bytes: &[u8]| {
        if std::fs::write(&input, bytes).is_err() {
            return;
        }
        if let Ok(reader) = DriveReader::open(&input) {
            let _ = reader.topics();
            if let Ok(it) = reader.messages(&ReadFilter::all()) {
                let mut it = it.skip_damaged();
                while let Some(Ok(view)) = it.next_message() {
                    let _ = view.decode::<PointCloud2>().map(|c| from_point_cloud2(&c, "fuzz"));
                    let _ = view.decode::<CameraInfo>().map(|i| CameraModel::from_camera_info(&i, "fuzz"));
                    let _ = view.decode::<TfMessage>();
                }
            }
        }
        let _ = recover(&input, &output);
    });
}
