//! Model contracts as TOML or JSON (`--contract` files, label indexes and
//! ONNX metadata carry them) and KITTI label files.

use std::path::Path;

use nines_datasets::contract::{ModelCard, ModelContract};
use nines_datasets::import::parse_labels;

fn main() {
    let toml = nines_fuzz::scratch("contract.toml");
    let json = nines_fuzz::scratch("contract.json");
    afl::fuzz!(|bytes: &[u8]| {
        for path in [&toml, &json] {
            if std::fs::write(path, bytes).is_ok()
                && let Ok(c) = ModelContract::load(path)
            {
                let _ = (c.label_size(), c.digest(), ModelCard::tensors(&c));
            }
        }
        if let Ok(card) = serde_json::from_slice::<ModelCard>(bytes) {
            let _ = card.contract.validate(Path::new("model.onnx"));
        }
        let _ = parse_labels(Path::new("label_2.txt"), &String::from_utf8_lossy(bytes));
    });
}
