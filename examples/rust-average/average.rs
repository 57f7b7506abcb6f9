//! transforms.average: a moving average per subject and field, in Rust.
//!
//! For each input (a JSON object), each configured field that holds a number adds a sample to the
//! window of that subject and field, kept in the plugin instance's state; once the window holds
//! `min_samples` samples, the transform emits `{"avg": …, "samples": n}` on
//! `<input subject>.<field>`. Configuration: see README.md.
//!
//! Built with Debian's rustc for wasm32-unknown-unknown (build.sh). The crate uses `std` only for
//! its allocator and panic runtime: a `no_std` crate with a global allocator needs Rust 1.68 or
//! later, and Debian bookworm ships 1.63.

#[path = "../../sdk/rust/switchyard.rs"]
mod switchyard;

use switchyard::json::{self, quote, Value};
use switchyard::{Error, Guest, Input, Status};

/// Bounds of the configuration.
const MAX_WINDOW: i64 = 1000;
const MAX_FIELDS: usize = 64;
const MAX_FIELD_BYTES: usize = 128;
const MAX_ROUND: i64 = 9;

/// The configuration, checked, held by every module instance.
struct Average {
    fields: Vec<String>,
    window: usize,
    min_samples: usize,
    /// Decimal places of the average; None: as computed.
    round: Option<u32>,
}

impl Guest for Average {
    fn init(config: &Value) -> Result<Average, Error> {
        std::panic::set_hook(Box::new(|p| switchyard::report_panic(p)));
        Average::from_config(config).map_err(|e| e.context("config"))
    }

    fn transform(&mut self, input: &Input) -> Result<(), Error> {
        // Read every configured field before changing anything, so that a failed call leaves
        // the state as it was.
        let samples = self.samples(input.payload())?;
        for (field, x) in samples {
            let window = self.add(input.subject(), field, x)?;
            if window.len() < self.min_samples {
                continue; // warming up
            }
            let payload = self.output(&window)?;
            let subject = format!("{}.{}", input.subject(), field);
            match switchyard::emit(&subject, payload.as_bytes()) {
                Ok(()) => {}
                Err(Status::Limit) => {
                    // The host allows no more outputs in this call: deliver what was queued.
                    switchyard::warn("emit limit reached: some averages of this message were not sent");
                    break;
                }
                Err(s) => return Err(Error::from(s).context("emit")),
            }
        }
        Ok(())
    }
}

switchyard::export!(Average, transform);

impl Average {
    /// Decodes the configuration strictly: unknown keys, wrong types and values out of range are
    /// refused, naming the key.
    fn from_config(config: &Value) -> Result<Average, Error> {
        let members = config.as_object().ok_or("want a JSON object")?;
        let mut fields = None;
        let mut window = 5;
        let mut min_samples = 1;
        let mut round = None;
        for (key, value) in members {
            match key.as_str() {
                "fields" => fields = Some(parse_fields(value)?),
                "window" => window = integer(value, "window", 1, MAX_WINDOW)? as usize,
                "min_samples" => min_samples = integer(value, "min_samples", 1, MAX_WINDOW)? as usize,
                "round" => round = Some(integer(value, "round", 0, MAX_ROUND)? as u32),
                _ => return Err(Error::new(format!("unknown field {}", quote(key)))),
            }
        }
        let fields = fields.ok_or(r#"fields is required: the members to average, e.g. ["t"]"#)?;
        if min_samples > window {
            return Err(Error::new(format!("min_samples ({}) must not exceed window ({})", min_samples, window)));
        }
        Ok(Average { fields, window, min_samples, round })
    }

    /// The configured fields of the payload that hold a number, in configuration order. A field
    /// that is absent is skipped; one that holds anything else fails the call.
    fn samples<'a>(&'a self, payload: &[u8]) -> Result<Vec<(&'a str, f64)>, Error> {
        if payload.is_empty() {
            return Err(Error::new("payload is empty: want a JSON object"));
        }
        let doc = json::parse(payload).map_err(|e| Error::new(format!("payload is not JSON: {}", e)))?;
        if doc.as_object().is_none() {
            return Err(Error::new(format!("payload must be a JSON object, got {}", doc.kind())));
        }
        let mut samples = Vec::new();
        for field in &self.fields {
            match doc.get(field) {
                None => {}
                Some(Value::Number(x)) => samples.push((field.as_str(), *x)), // finite: the parser refuses others
                Some(v) => return Err(Error::new(format!("field {} must be a number, got {}", quote(field), v.kind()))),
            }
        }
        Ok(samples)
    }

    /// Adds x to the window of subject and field in the state, and returns the window (oldest
    /// first, at most `self.window` samples).
    fn add(&self, subject: &str, field: &str, x: f64) -> Result<Vec<f64>, Error> {
        let key = state_key(subject, field);
        let mut window = match switchyard::state_get(&key).map_err(|s| Error::from(s).context("state"))? {
            Some(bytes) => decode(&bytes).unwrap_or_else(|| {
                switchyard::warn("state: a stored window was not a list of numbers; starting it again");
                Vec::new()
            }),
            None => Vec::new(),
        };
        window.push(x);
        if window.len() > self.window {
            window.drain(..window.len() - self.window); // a smaller window since the last config
        }
        match switchyard::state_set(&key, &encode(&window)) {
            Ok(()) => Ok(window),
            Err(Status::Limit) => Err(Error::new(format!(
                "state full: no room for the samples of field {} on {}",
                quote(field),
                quote(subject)
            ))),
            Err(s) => Err(Error::from(s).context("state")),
        }
    }

    /// The output payload of a window: `{"avg":21.55,"samples":2}`.
    fn output(&self, window: &[f64]) -> Result<String, Error> {
        let mut avg = mean(window);
        if let Some(places) = self.round {
            avg = json::round(avg, places);
        }
        let out = Value::object([("avg", Value::from(avg)), ("samples", Value::from(window.len()))]);
        Ok(out.to_json()?)
    }
}

/// The configured fields: a non-empty array of distinct names, each usable as one subject token.
fn parse_fields(value: &Value) -> Result<Vec<String>, Error> {
    let items = value.as_array().ok_or_else(|| format!("fields must be an array of member names, got {}", value.kind()))?;
    if items.is_empty() {
        return Err(Error::new("fields must not be empty"));
    }
    if items.len() > MAX_FIELDS {
        return Err(Error::new(format!("fields must have at most {} names, got {}", MAX_FIELDS, items.len())));
    }
    let mut fields: Vec<String> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let name = item.as_str().ok_or_else(|| format!("fields[{}] must be a string, got {}", i, item.kind()))?;
        let token = !name.is_empty()
            && name.len() <= MAX_FIELD_BYTES
            && name != "*"
            && name != ">"
            && !name.chars().any(|c| c == '.' || c.is_whitespace() || c.is_control());
        if !token {
            return Err(Error::new(format!(
                "fields[{}] {} must be a name of 1 to {} bytes without dots, spaces or control characters, and not * or >",
                i,
                quote(name),
                MAX_FIELD_BYTES
            )));
        }
        if fields.iter().any(|f| f == name) {
            return Err(Error::new(format!("fields lists {} twice", quote(name))));
        }
        fields.push(name.to_string());
    }
    Ok(fields)
}

/// An integer option within [min, max].
fn integer(value: &Value, name: &str, min: i64, max: i64) -> Result<i64, Error> {
    match value.as_i64() {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(Error::new(format!(
            "{} must be an integer from {} to {}, got {}",
            name,
            min,
            max,
            value.to_json().unwrap_or_default()
        ))),
    }
}

/// The state key of a window: the field, a NUL, the subject. Field names have no control
/// characters, so the first NUL separates the two.
fn state_key(subject: &str, field: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(field.len() + 1 + subject.len());
    key.extend_from_slice(field.as_bytes());
    key.push(0);
    key.extend_from_slice(subject.as_bytes());
    key
}

/// A window as stored: its samples, oldest first, as 8-byte little-endian f64s.
fn encode(window: &[f64]) -> Vec<u8> {
    window.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A stored window; None when the bytes are not one (not whole samples, or a sample that is not
/// finite).
fn decode(bytes: &[u8]) -> Option<Vec<f64>> {
    if bytes.len() % 8 != 0 || bytes.len() / 8 > MAX_WINDOW as usize {
        return None;
    }
    let window: Vec<f64> = bytes.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect();
    window.iter().all(|x| x.is_finite()).then(|| window)
}

/// The mean of a non-empty window of finite samples, summed oldest first (so the result is
/// deterministic). When the sum overflows, the samples are divided first: the mean of finite
/// numbers is always finite.
fn mean(window: &[f64]) -> f64 {
    let n = window.len() as f64;
    let sum: f64 = window.iter().sum();
    if sum.is_finite() {
        sum / n
    } else {
        window.iter().map(|x| x / n).sum()
    }
}
