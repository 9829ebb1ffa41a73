/// What can go wrong turning device data into temperatures.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ThermalError {
    #[error(
        "decoding a {format} frame of {width}x{height}: expected {expected} bytes, got {actual}"
    )]
    DecodeLength {
        format: &'static str,
        width: u32,
        height: u32,
        expected: usize,
        actual: usize,
    },
    #[error("decoding a {format} frame: invalid dimensions {width}x{height} ({reason})")]
    DecodeDimensions {
        format: &'static str,
        width: u32,
        height: u32,
        reason: &'static str,
    },
    #[error("building a thermogram of {width}x{height} from {len} values")]
    ThermogramSize { width: u32, height: u32, len: usize },
    #[error(
        "region x={x} y={y} {width}x{height} does not fit in a {frame_width}x{frame_height} frame"
    )]
    RegionOutside {
        x: u32,
        y: u32,
        width: u32,
        height: u32,
        frame_width: u32,
        frame_height: u32,
    },
    #[error("encoding {celsius} °C: outside the range of the {format} format")]
    EncodeRange { format: &'static str, celsius: f32 },
    #[error("colour range {min_c} °C .. {max_c} °C is empty or not finite")]
    ColourRange { min_c: f32, max_c: f32 },
}
