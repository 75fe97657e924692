//! Labels on disk (DESIGN.md section 3): one safetensors shard per drive
//! ([`shard`]: the layout, its writer and the reader training uses), the
//! folder's JSON index ([`index`]), and the label folder being filled
//! ([`folder`]: open, resume, add a drive), which every caller that makes
//! labels goes through.

mod folder;
mod index;
mod shard;

pub use folder::{Added, LabelFolder};
pub use index::{Failure, INDEX_FILE, LabelIndex, LabelStats, RecoveryStates, ShardEntry, file_digest};
pub use shard::{CONTRACT_DIGEST_KEY, DRIVE_DIGEST_KEY, DriveShard, ShardLayout, ShardTensor, write_shard};
