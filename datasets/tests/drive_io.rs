//! Drive logs: round trips, filters, ordering, chunk bounds, recovery of cut
//! files and robustness against corruption.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]
#![allow(clippy::float_cmp, reason = "round trips must be bit-exact")]
#![allow(clippy::too_many_lines, clippy::cast_lossless, reason = "test scenarios read top to bottom")]

use std::path::Path;

use nines_datasets::drive::{DriveReader, DriveWriter, DriveWriterOptions, ReadFilter, recover};
use nines_datasets::msg::{AckermannDrive, AckermannDriveStamped, DiagnosticArray, DiagnosticStatus, Header};
use proptest::prelude::*;

const MS: u64 = 1_000_000;
const T0: u64 = 1_700_000_000_000_000_000;

fn command(i: u64) -> AckermannDriveStamped {
    AckermannDriveStamped {
        header: Header::new(T0 + i * 10 * MS, "base_link"),
        drive: AckermannDrive { steering_angle: i as f32 * 0.001, speed: 5.0, ..Default::default() },
    }
}

/// 400 commands at 100 Hz plus diagnostics at 10 Hz, in small chunks.
fn write_drive(path: &Path, options: DriveWriterOptions) -> u64 {
    let mut writer = DriveWriter::create_with(path, options).unwrap();
    let mut n = 0;
    for i in 0..400u64 {
        let t = T0 + i * 10 * MS;
        writer.write("/control/command", t, &command(i)).unwrap();
        n += 1;
        if i % 10 == 0 {
            let diag = DiagnosticArray {
                header: Header::new(t, ""),
                status: vec![DiagnosticStatus {
                    name: "runtime".into(),
                    message: format!("tick {i}"),
                    ..Default::default()
                }],
            };
            writer.write("/diagnostics", t, &diag).unwrap();
            n += 1;
        }
    }
    writer.finish().unwrap();
    n
}

fn small_chunks() -> DriveWriterOptions {
    DriveWriterOptions { chunk_size_bytes: 2048, ..Default::default() }
}

fn read_commands(path: &Path) -> Vec<(u64, AckermannDriveStamped)> {
    DriveReader::open(path).unwrap().read_topic("/control/command").unwrap()
}

#[test]
fn round_trip_with_topic_and_time_filters() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("drive.mcap");
    let total = write_drive(&path, small_chunks());
    let reader = DriveReader::open(&path).unwrap();
    assert_eq!(reader.message_count(), total);
    let topics = reader.topics();
    assert_eq!(topics.len(), 2);
    assert_eq!(topics[0].topic, "/control/command");
    assert_eq!(topics[0].type_name, "ackermann_msgs/msg/AckermannDriveStamped");
    assert_eq!(topics[0].message_count, 400);
    assert!(reader.chunk_extents().len() > 10, "small chunks give many chunks");

    let commands = read_commands(&path);
    assert_eq!(commands.len(), 400);
    for (i, (t, msg)) in commands.iter().enumerate() {
        assert_eq!(*msg, command(i as u64));
        assert_eq!(*t, msg.header.stamp.as_nanos());
    }

    let filter = ReadFilter {
        topics: Some(vec!["/diagnostics".into()]),
        start_nanos: Some(T0 + 1000 * MS),
        end_nanos: Some(T0 + 2000 * MS),
    };
    let mut it = reader.messages(&filter).unwrap();
    let mut times = Vec::new();
    while let Some(view) = it.next_message() {
        let view = view.unwrap();
        assert_eq!(view.topic, "/diagnostics");
        times.push(view.log_time_nanos);
    }
    // 1.0 s to 2.0 s inclusive at 10 Hz.
    assert_eq!(times, (10..=20).map(|i| T0 + i * 100 * MS).collect::<Vec<_>>());
}

#[test]
fn reads_in_log_time_order_whatever_the_write_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("unordered.mcap");
    let mut writer =
        DriveWriter::create_with(&path, DriveWriterOptions { chunk_size_bytes: 256, ..Default::default() })
            .unwrap();
    // Two sensors whose messages arrive late relative to each other.
    let order = [5u64, 1, 7, 2, 9, 0, 3, 8, 4, 6];
    for &i in &order {
        writer.write("/control/command", T0 + i * MS, &command(i)).unwrap();
    }
    writer.finish().unwrap();
    let times: Vec<u64> = read_commands(&path).into_iter().map(|(t, _)| t).collect();
    assert_eq!(times, (0..10).map(|i| T0 + i * MS).collect::<Vec<_>>());
}

#[test]
fn chunks_span_at_most_the_configured_log_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("timed.mcap");
    // Big size limit: only the 1 s time bound closes chunks.
    write_drive(&path, DriveWriterOptions { chunk_size_bytes: 1 << 30, ..Default::default() });
    let chunks = DriveReader::open(&path).unwrap().chunk_extents();
    assert_eq!(chunks.len(), 4, "4 s of messages at a 1 s bound: {chunks:?}");
    for c in &chunks {
        assert!(c.end_nanos - c.start_nanos < 1_000 * MS, "{c:?}");
    }
}

#[test]
fn a_killed_recorder_loses_at_most_the_open_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("killed.mcap");
    let mut writer = DriveWriter::create(&path).unwrap();
    for i in 0..350u64 {
        writer.write("/control/command", T0 + i * 10 * MS, &command(i)).unwrap();
    }
    // As if the process were killed: no drop, nothing buffered in user space
    // reaches the file.
    std::mem::forget(writer);
    assert!(DriveReader::open(&path).is_err(), "a killed recording has no summary");
    let fixed = dir.path().join("fixed.mcap");
    let report = recover(&path, &fixed).unwrap();
    let kept = read_commands(&fixed);
    // The last message is at 3.49 s; chunks close every 1 s of log time, so
    // everything before 3.0 s was on disk.
    assert_eq!(kept.len(), 300, "{report:?}");
    for (i, (_, msg)) in kept.iter().enumerate() {
        assert_eq!(*msg, command(i as u64));
    }
}

#[test]
fn wrong_type_is_refused_with_names() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("drive.mcap");
    write_drive(&path, small_chunks());
    let err = DriveReader::open(&path)
        .unwrap()
        .read_topic::<DiagnosticArray>("/control/command")
        .unwrap_err()
        .to_string();
    assert!(err.contains("/control/command") && err.contains("AckermannDriveStamped"), "{err}");
}

#[test]
fn non_mcap_and_empty_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "hello, not a drive").unwrap();
    let err = DriveReader::open(&text).err().unwrap().to_string();
    assert!(err.contains("notes.txt") && err.contains("not an MCAP"), "{err}");
    let empty = dir.path().join("empty.mcap");
    std::fs::write(&empty, "").unwrap();
    assert!(DriveReader::open(&empty).err().unwrap().to_string().contains("empty"));
}

fn cut_file_check(bytes: &[u8], cut: usize) {
    let dir = tempfile::tempdir().unwrap();
    let intact = dir.path().join("intact.mcap");
    std::fs::write(&intact, bytes).unwrap();
    let chunks = DriveReader::open(&intact).unwrap().chunk_extents();
    let broken = dir.path().join("broken.mcap");
    std::fs::write(&broken, &bytes[..cut]).unwrap();
    // The cut file cannot be read by index, and says how to fix that.
    let err = DriveReader::open(&broken).err().unwrap().to_string();
    assert!(err.contains("broken.mcap") && err.contains("offset"), "{err}");
    let fixed = dir.path().join("fixed.mcap");
    let report = recover(&broken, &fixed).unwrap();
    // Every message of every chunk that ended before the cut survives.
    let last_complete_end =
        chunks.iter().filter(|c| c.offset + c.length <= cut as u64).map(|c| c.end_nanos).max();
    let kept = read_commands(&fixed);
    let kept_times: Vec<u64> = kept.iter().map(|(t, _)| *t).collect();
    let expected_prefix = (0..400u64).map(|i| T0 + i * 10 * MS).take_while(|t| Some(*t) <= last_complete_end);
    for (i, t) in expected_prefix.enumerate() {
        assert_eq!(kept_times.get(i), Some(&t), "cut at {cut}: message {i} lost ({report:?})");
    }
    // And nothing invented: what is kept is an exact prefix of what was written.
    for (i, (_, msg)) in kept.iter().enumerate() {
        assert_eq!(*msg, command(i as u64));
    }
}

#[test]
fn skip_damaged_passes_over_a_bad_chunk_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("drive.mcap");
    let total = write_drive(&path, small_chunks());
    let reader = DriveReader::open(&path).unwrap();
    let chunks = reader.chunk_extents();
    assert!(chunks.len() > 4, "{} chunks", chunks.len());
    let victim = chunks[chunks.len() / 2];
    let mut bytes = std::fs::read(&path).unwrap();
    // Flip a byte of the compressed payload: the chunk CRC no longer matches.
    bytes[(victim.offset + victim.length - 5) as usize] ^= 0x5a;
    let damaged_path = dir.path().join("damaged.mcap");
    std::fs::write(&damaged_path, &bytes).unwrap();

    let reader = DriveReader::open(&damaged_path).unwrap();
    let mut strict = reader.messages(&ReadFilter::all()).unwrap();
    let mut strict_error = None;
    while let Some(view) = strict.next_message() {
        if let Err(e) = view {
            strict_error = Some(e.to_string());
        }
    }
    let strict_error = strict_error.expect("the strict reader reports the bad chunk");
    assert!(strict_error.contains(&format!("offset {}", victim.offset)), "{strict_error}");

    let mut lenient = reader.messages(&ReadFilter::all()).unwrap().skip_damaged();
    let (mut kept, mut last) = (0u64, 0u64);
    while let Some(view) = lenient.next_message() {
        let view = view.unwrap();
        assert!(view.log_time_nanos >= last, "time order is kept across the gap");
        last = view.log_time_nanos;
        kept += 1;
    }
    assert_eq!(lenient.damaged().len(), 1);
    assert_eq!(lenient.damaged()[0].offset, victim.offset);
    assert_eq!(lenient.damaged()[0].start_nanos, victim.start_nanos);
    assert!(kept < total && kept > total / 2, "kept {kept} of {total}");
    assert!(last >= chunks.last().unwrap().start_nanos, "chunks after the damage are read");
}

/// Messages a lenient reader yields from `path` (0 if it cannot open it).
fn readable(path: &Path) -> u64 {
    let Ok(reader) = DriveReader::open(path) else { return 0 };
    let mut it = reader.messages(&ReadFilter::all()).unwrap().skip_damaged();
    let mut n = 0;
    while let Some(Ok(_)) = it.next_message() {
        n += 1;
    }
    n
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// A byte flipped anywhere in the data: recovery keeps at least what a
    /// reader yields, says what it skipped, and counts every message it wrote.
    #[test]
    fn recover_never_keeps_less_than_the_reader_reads(at in 0.0f64..1.0, flip in 1u8..=255) {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = drive_bytes();
        let data_end = bytes.len() * 3 / 4; // the data section; the summary is at the end
        let i = 8 + ((data_end - 8) as f64 * at) as usize;
        bytes[i] ^= flip;
        let damaged = dir.path().join("damaged.mcap");
        std::fs::write(&damaged, &bytes).unwrap();
        let out = dir.path().join("fixed.mcap");
        if let Ok(report) = recover(&damaged, &out) {
            prop_assert!(report.messages >= readable(&damaged), "kept {} of {} readable", report.messages, readable(&damaged));
            prop_assert_eq!(readable(&out), report.messages);
            prop_assert!(report.whole() || report.stop_reason.is_some());
        }
    }
}

#[test]
fn recovery_continues_past_a_damaged_first_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("drive.mcap");
    let total = write_drive(&path, small_chunks());
    let first = DriveReader::open(&path).unwrap().chunk_extents()[0];
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[(first.offset + first.length / 2) as usize] ^= 0x5a;
    let damaged = dir.path().join("damaged.mcap");
    std::fs::write(&damaged, &bytes).unwrap();
    let out = dir.path().join("fixed.mcap");
    let report = recover(&damaged, &out).unwrap();
    let readable = readable(&damaged);
    assert!(readable > total / 2, "{readable} of {total}");
    assert_eq!(report.messages, readable, "{report:?}");
    assert_eq!(report.skipped_chunks.len(), 1);
    assert_eq!(report.skipped_chunks[0].0, first.offset);
    assert!(!report.whole());
}

fn drive_bytes() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("drive.mcap");
    write_drive(&path, small_chunks());
    std::fs::read(path).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20, ..ProptestConfig::default() })]

    #[test]
    fn recover_keeps_every_complete_chunk_of_a_cut_file(fraction in 0.0f64..1.0) {
        let bytes = drive_bytes();
        let cut = 8 + ((bytes.len() - 40) as f64 * fraction) as usize;
        cut_file_check(&bytes, cut);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn corruption_gives_errors_naming_file_and_offset(
        flips in proptest::collection::vec((0.0f64..1.0, 1u8..=255), 1..8)
    ) {
        let mut bytes = drive_bytes();
        for (at, xor) in &flips {
            let i = ((bytes.len() - 1) as f64 * at) as usize;
            bytes[i] ^= xor;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("corrupt.mcap");
        std::fs::write(&path, &bytes).unwrap();
        let result = DriveReader::open(&path).and_then(|reader| {
            let mut it = reader.messages(&ReadFilter::all())?;
            while let Some(view) = it.next_message() {
                let view = view?;
                if view.topic == "/control/command" {
                    view.decode::<AckermannDriveStamped>()?;
                }
            }
            Ok(())
        });
        if let Err(e) = result {
            let text = e.to_string();
            prop_assert!(text.contains("corrupt.mcap"), "{}", text);
            prop_assert!(text.contains("offset"), "{}", text);
        }
        // Recovery of a damaged file never panics either.
        let _ = recover(&path, &dir.path().join("out.mcap"));
    }
}
