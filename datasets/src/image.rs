//! Camera images from drive messages: JPEG or PNG `CompressedImage`, or raw
//! `Image` in rgb8 / bgr8 / mono8, always returned as RGB.

use image::{ImageFormat, RgbImage};

use crate::error::{DatasetError, Result};
use crate::msg::{CompressedImage, Image};

/// Decodes a compressed image (`format` naming jpeg or png, or sniffed from
/// the bytes when it names neither). `source` names the topic for errors.
pub fn decode_compressed(msg: &CompressedImage, source: &str) -> Result<RgbImage> {
    let format = msg.format.to_ascii_lowercase();
    let decoded = if format.contains("png") {
        image::load_from_memory_with_format(&msg.data, ImageFormat::Png)
    } else if format.contains("jpeg") || format.contains("jpg") {
        image::load_from_memory_with_format(&msg.data, ImageFormat::Jpeg)
    } else {
        image::load_from_memory(&msg.data)
    };
    decoded.map(|img| img.to_rgb8()).map_err(|e| {
        DatasetError::invalid(
            source,
            "CompressedImage.data",
            format!("cannot decode as `{}`: {e}", msg.format),
        )
    })
}

/// Converts a raw image to RGB. `source` names the topic for errors.
pub fn decode_raw(msg: &Image, source: &str) -> Result<RgbImage> {
    let bad = |field: &str, problem: String| DatasetError::invalid(source, format!("Image.{field}"), problem);
    let (w, h) = (msg.width as usize, msg.height as usize);
    let channels = match msg.encoding.as_str() {
        "rgb8" | "bgr8" => 3,
        "mono8" => 1,
        other => {
            return Err(bad("encoding", format!("`{other}` is not a camera image; use rgb8, bgr8 or mono8")));
        }
    };
    let step = msg.step as usize;
    if w == 0 || h == 0 {
        return Err(bad("width/height", format!("{w}x{h} has no pixels")));
    }
    if step < w * channels || msg.data.len() < step * h {
        return Err(bad("data", format!("{} bytes for {w}x{h} with step {step}", msg.data.len())));
    }
    let mut rgb = Vec::with_capacity(w * h * 3);
    for row in msg.data.chunks_exact(step).take(h) {
        for px in row[..w * channels].chunks_exact(channels) {
            match (msg.encoding.as_str(), px) {
                ("bgr8", [b, g, r]) => rgb.extend_from_slice(&[*r, *g, *b]),
                (_, [v]) => rgb.extend_from_slice(&[*v, *v, *v]),
                (_, p) => rgb.extend_from_slice(p),
            }
        }
    }
    RgbImage::from_raw(msg.width, msg.height, rgb).ok_or_else(|| bad("data", "size mismatch".into()))
}

/// Decodes a camera message from a drive, whichever type it is:
/// `CompressedImage` (JPEG, PNG) or raw `Image` (rgb8, bgr8, mono8).
pub fn decode_camera(view: &crate::drive::MessageView<'_>) -> Result<RgbImage> {
    use crate::msg::RosMessage;
    let source = format!("{} {} at {} ns", view.source.display(), view.topic, view.log_time_nanos);
    match view.type_name {
        CompressedImage::TYPE_NAME => decode_compressed(&view.decode()?, &source),
        Image::TYPE_NAME => decode_raw(&view.decode()?, &source),
        other => Err(DatasetError::invalid(
            view.source,
            view.topic,
            format!("carries {other}, not a camera image (sensor_msgs/msg/CompressedImage or Image)"),
        )),
    }
}

/// A frame as the model sees it after a drive's camera path: encoded as a
/// recorder writes it ([`encode_jpeg`] at `quality`) and decoded as
/// training reads it ([`decode_compressed`]). Closed-loop eval feeds the
/// model these, so it sees the frames it was trained on.
pub fn through_jpeg(image: &RgbImage, quality: u8) -> Result<RgbImage> {
    let jpeg = CompressedImage {
        format: "jpeg".into(),
        data: encode_jpeg(image, quality)?,
        ..CompressedImage::default()
    };
    decode_compressed(&jpeg, "a closed-loop frame")
}

/// Encodes RGB pixels as a JPEG `CompressedImage` payload (at most 65535
/// pixels a side, JPEG's own limit).
///
/// Uses `jpeg-encoder` rather than the `image` crate's encoder: it is about
/// twice as fast, and the simulator encodes every frame it renders.
pub fn encode_jpeg(image: &RgbImage, quality: u8) -> Result<Vec<u8>> {
    let bad = |problem: String| DatasetError::invalid("<memory>", "image", problem);
    let (w, h) = image.dimensions();
    let (w, h) = (u16::try_from(w), u16::try_from(h));
    let (Ok(w), Ok(h)) = (w, h) else { return Err(bad("JPEG allows at most 65535 pixels a side".into())) };
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, quality.clamp(1, 100))
        .encode(image.as_raw(), w, h, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| bad(format!("JPEG encoding failed: {e}")))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::Header;

    #[test]
    fn empty_raw_images_are_errors_not_panics() {
        let empty =
            |width, height, step| Image { width, height, step, encoding: "rgb8".into(), ..Image::default() };
        for (w, h, step) in [(0, 0, 0), (0, 4, 0), (4, 0, 12)] {
            let err = decode_raw(&empty(w, h, step), "/camera").unwrap_err().to_string();
            assert!(err.contains("no pixels"), "{err}");
        }
    }

    #[test]
    fn raw_bgr_and_jpeg_decode_to_rgb() {
        let raw = Image {
            header: Header::default(),
            height: 1,
            width: 2,
            encoding: "bgr8".into(),
            is_bigendian: 0,
            step: 6,
            data: vec![1, 2, 3, 4, 5, 6],
        };
        assert_eq!(decode_raw(&raw, "t").unwrap().into_raw(), vec![3, 2, 1, 6, 5, 4]);
        let img = RgbImage::from_fn(16, 8, |x, _| image::Rgb([(x * 16) as u8, 128, 0]));
        let jpeg = CompressedImage {
            format: "jpeg".into(),
            data: encode_jpeg(&img, 95).unwrap(),
            ..Default::default()
        };
        let back = decode_compressed(&jpeg, "t").unwrap();
        assert_eq!(back.dimensions(), (16, 8));
        assert!((i32::from(back.get_pixel(8, 4)[0]) - 128).abs() < 12);
        let broken =
            CompressedImage { format: "jpeg".into(), data: vec![0xff, 0xd8, 0], ..Default::default() };
        assert!(decode_compressed(&broken, "cam").unwrap_err().to_string().contains("cam"));
    }
}
