//! `nines replay --model`: the runtime's lockstep replay of the drive
//! (`nines_onboard::replay`, the same path open-loop eval uses), its
//! predictions and commands shown next to what was driven.

/// Names the runtime's replayed commands among the drive's topics (they
/// are not in the drive; the plots' styles key on it).
pub const RUNTIME_COMMAND: &str = "/nines/runtime/command";
