// transforms.passthrough in Rust: emits each input's payload on its subject.
// The smallest complete guest, and the module the per-language figures of
// docs/BENCHMARKS.md ("Guest languages") measure.
#[path = "../switchyard.rs"]
mod switchyard;

use switchyard::json::Value;
use switchyard::{Error, Guest, Input};

struct Passthrough;

impl Guest for Passthrough {
    fn init(config: &Value) -> Result<Passthrough, Error> {
        match config.as_object() {
            Some(o) if o.is_empty() => Ok(Passthrough),
            _ => Err("config: passthrough takes no options".into()),
        }
    }

    fn transform(&mut self, input: &Input) -> Result<(), Error> {
        switchyard::emit_same(input.payload())?;
        Ok(())
    }
}

switchyard::export!(Passthrough, transform);
