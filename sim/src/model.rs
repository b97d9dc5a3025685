//! Model shapes: a dense decoder-only transformer described by its Hugging Face `config.json`.
//!
//! Only the fields that set operator shapes and memory are read: `hidden_size`, `num_hidden_layers`,
//! `num_attention_heads`, `num_key_value_heads` (defaults to `num_attention_heads`), `head_dim` (defaults to
//! `hidden_size / num_attention_heads`), `intermediate_size`, `vocab_size`, `tie_word_embeddings` (default
//! false), `torch_dtype` (default bfloat16) and `max_position_embeddings` (context limit, optional). Six
//! configs are bundled and selectable by name.

use std::path::Path;

use serde::Deserialize;

use crate::error::ConfigError;

/// Bundled model configs: (name, Hugging Face repository, config.json text).
const BUNDLED: &[(&str, &str, &str)] = &[
    ("qwen3-8b", "Qwen/Qwen3-8B", include_str!("../models/qwen3-8b.json")),
    ("qwen3-14b", "Qwen/Qwen3-14B", include_str!("../models/qwen3-14b.json")),
    ("qwen3-32b", "Qwen/Qwen3-32B", include_str!("../models/qwen3-32b.json")),
    ("llama-3.1-8b", "meta-llama/Llama-3.1-8B", include_str!("../models/llama-3.1-8b.json")),
    ("llama-3.1-70b", "meta-llama/Llama-3.1-70B", include_str!("../models/llama-3.1-70b.json")),
    ("codellama-34b", "codellama/CodeLlama-34b-hf", include_str!("../models/codellama-34b.json")),
];

/// Shapes of a dense transformer, enough to count FLOPs, bytes, weights and KV-cache size.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    /// Name used in reports (bundled name or the config path).
    pub name: String,
    /// Model width `h`.
    pub hidden_size: u64,
    /// Number of transformer layers `L`.
    pub num_layers: u64,
    /// Query heads `h_q`.
    pub num_q_heads: u64,
    /// Key/value heads `h_kv` (grouped-query attention when < `h_q`).
    pub num_kv_heads: u64,
    /// Per-head dimension `d_h`.
    pub head_dim: u64,
    /// MLP intermediate size `I` (gated MLP: gate and up are `h x I` each).
    pub intermediate_size: u64,
    /// Vocabulary size `V`.
    pub vocab_size: u64,
    /// Whether the LM head shares the embedding matrix.
    pub tie_word_embeddings: bool,
    /// Bytes per weight and activation element `s` (2 for bf16/fp16, 4 for fp32).
    pub dtype_bytes: u64,
    /// Longest sequence (prompt + output) the model accepts: `max_position_embeddings`, when given.
    pub max_context: Option<u32>,
}

#[derive(Deserialize)]
struct HfConfig {
    hidden_size: u64,
    num_hidden_layers: u64,
    num_attention_heads: u64,
    num_key_value_heads: Option<u64>,
    head_dim: Option<u64>,
    intermediate_size: u64,
    vocab_size: u64,
    #[serde(default)]
    tie_word_embeddings: bool,
    torch_dtype: Option<String>,
    max_position_embeddings: Option<u32>,
}

impl ModelSpec {
    /// Names of the bundled models.
    pub fn bundled_names() -> Vec<&'static str> {
        BUNDLED.iter().map(|(n, _, _)| *n).collect()
    }

    /// All bundled models with their Hugging Face repository names.
    pub fn bundled() -> Vec<(ModelSpec, &'static str)> {
        BUNDLED
            .iter()
            .map(|(n, repo, text)| (Self::from_json(n, text).expect("bundled configs are tested"), *repo))
            .collect()
    }

    /// Resolves `--model`: a bundled name (case-insensitive), a path to a `config.json`, or a model folder
    /// holding one.
    pub fn resolve(arg: &str) -> Result<ModelSpec, ConfigError> {
        if let Some((n, _, text)) = BUNDLED.iter().find(|(n, _, _)| n.eq_ignore_ascii_case(arg)) {
            return Self::from_json(n, text);
        }
        let mut path = Path::new(arg).to_path_buf();
        if path.is_dir() {
            // A downloaded model folder: read its config.json.
            path.push("config.json");
        }
        if arg.ends_with(".json") || path.exists() {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| ConfigError::Model(format!("cannot read model config {}: {e}", path.display())))?;
            return Self::from_json(arg, &text);
        }
        Err(ConfigError::Model(format!(
            "unknown model {arg:?}; bundled models: {}; or pass a path to a Hugging Face config.json",
            Self::bundled_names().join(", ")
        )))
    }

    /// Parses the text of a Hugging Face `config.json`.
    pub fn from_json(name: &str, text: &str) -> Result<ModelSpec, ConfigError> {
        let c: HfConfig =
            serde_json::from_str(text).map_err(|e| ConfigError::Model(format!("{name}: bad config.json: {e}")))?;
        let dtype_bytes = match c.torch_dtype.as_deref().unwrap_or("bfloat16") {
            "bfloat16" | "float16" | "half" => 2,
            "float32" | "float" => 4,
            other => {
                return Err(ConfigError::Model(format!("{name}: unsupported torch_dtype {other:?}")));
            }
        };
        let positive = [
            ("hidden_size", c.hidden_size),
            ("num_hidden_layers", c.num_hidden_layers),
            ("num_attention_heads", c.num_attention_heads),
            ("intermediate_size", c.intermediate_size),
            ("vocab_size", c.vocab_size),
        ];
        if let Some((field, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(ConfigError::Model(format!("{name}: {field} must be > 0")));
        }
        let num_kv_heads = c.num_key_value_heads.unwrap_or(c.num_attention_heads);
        if num_kv_heads == 0 || !c.num_attention_heads.is_multiple_of(num_kv_heads) {
            return Err(ConfigError::Model(format!(
                "{name}: num_key_value_heads ({num_kv_heads}) must divide num_attention_heads ({})",
                c.num_attention_heads
            )));
        }
        let head_dim = c.head_dim.unwrap_or(c.hidden_size / c.num_attention_heads);
        if head_dim == 0 {
            return Err(ConfigError::Model(format!("{name}: head_dim must be > 0")));
        }
        // Bounds far above any real model, so that no product of sizes overflows (u64 arithmetic does not trap in
        // release builds): each size, then the parameter count and the KV bytes per token, checked in u128.
        for (field, v, max) in [
            ("hidden_size", c.hidden_size, 1u64 << 20),
            ("num_hidden_layers", c.num_hidden_layers, 1 << 14),
            ("num_attention_heads", c.num_attention_heads, 1 << 16),
            ("num_key_value_heads", num_kv_heads, 1 << 16),
            ("head_dim", head_dim, 1 << 16),
            ("intermediate_size", c.intermediate_size, 1 << 22),
            ("vocab_size", c.vocab_size, 1 << 24),
        ] {
            if v > max {
                return Err(ConfigError::Model(format!(
                    "{name}: {field} {v} is beyond the largest duet accepts, {max}"
                )));
            }
        }
        if let Some(ctx) = c.max_position_embeddings
            && ctx > 1 << 30
        {
            return Err(ConfigError::Model(format!(
                "{name}: max_position_embeddings {ctx} is beyond the largest duet accepts, {}",
                1u32 << 30
            )));
        }
        let spec = ModelSpec {
            name: name.to_string(),
            hidden_size: c.hidden_size,
            num_layers: c.num_hidden_layers,
            num_q_heads: c.num_attention_heads,
            num_kv_heads,
            head_dim,
            intermediate_size: c.intermediate_size,
            vocab_size: c.vocab_size,
            tie_word_embeddings: c.tie_word_embeddings,
            dtype_bytes,
            max_context: c.max_position_embeddings,
        };
        // The parameter count in u128, so that a product of in-bound sizes cannot overflow before the check.
        const MAX_PARAMS: u128 = 1 << 50;
        let params = spec.params_wide();
        if params > MAX_PARAMS {
            return Err(ConfigError::Model(format!(
                "{name}: {params} parameters is beyond the largest model duet accepts, 2^50 ({MAX_PARAMS})"
            )));
        }
        Ok(spec)
    }

    /// Parameters of one layer: QKV `h (h_q + 2 h_kv) d_h`, O `h_q d_h h`, gated MLP `3 h I`, two RMSNorm
    /// weights `2 h`. (Qwen3's per-head q/k norms, `2 d_h`, are below 0.001% and left out.)
    pub fn params_per_layer(&self) -> u64 {
        self.layer_params_wide() as u64
    }

    /// All parameters: `L x params_per_layer + V h (embedding) + V h (LM head, unless tied) + h (final norm)`.
    pub fn num_params(&self) -> u64 {
        self.params_wide() as u64
    }

    /// [`Self::params_per_layer`] in u128 (the one formula; `from_json` bounds it, so the u64 views are exact).
    fn layer_params_wide(&self) -> u128 {
        let w = u128::from;
        let (h, hq, hkv, dh) = (w(self.hidden_size), w(self.num_q_heads), w(self.num_kv_heads), w(self.head_dim));
        h * (hq + 2 * hkv) * dh + hq * dh * h + 3 * h * w(self.intermediate_size) + 2 * h
    }

    /// [`Self::num_params`] in u128.
    fn params_wide(&self) -> u128 {
        let emb = u128::from(self.vocab_size) * u128::from(self.hidden_size);
        let head = if self.tie_word_embeddings { 0 } else { emb };
        u128::from(self.num_layers) * self.layer_params_wide() + emb + head + u128::from(self.hidden_size)
    }

    /// Bytes of weights: `num_params x s`.
    pub fn weight_bytes(&self) -> u64 {
        self.num_params() * self.dtype_bytes
    }

    /// KV-cache bytes per token: `2 (K and V) x L x h_kv x d_h x s`.
    pub fn kv_bytes_per_token(&self) -> u64 {
        2 * self.num_layers * self.num_kv_heads * self.head_dim * self.dtype_bytes
    }

    /// The share of the model one GPU holds under tensor parallelism of degree `tp` (Megatron-style, as vLLM
    /// shards it): query heads, the MLP intermediate size and the vocabulary (embedding and LM head) are split
    /// `tp` ways; KV heads are split when `tp` divides them and replicated (one per GPU) when they divide `tp`;
    /// norms are replicated. Weights and KV bytes per token of the result are per GPU. Fails when `tp` does not
    /// divide the query heads or the intermediate size, or neither divides the other for the KV heads.
    pub fn shard(&self, tp: u32) -> Result<ModelSpec, ConfigError> {
        let n = u64::from(tp);
        if n == 0 {
            return Err(ConfigError::Invalid("--tp must be >= 1".into()));
        }
        if n == 1 {
            return Ok(self.clone());
        }
        let err = |what: &str, v: u64| {
            ConfigError::Invalid(format!(
                "--tp {tp} does not divide the {v} {what} of {}: tensor parallelism splits them evenly",
                self.name
            ))
        };
        if !self.num_q_heads.is_multiple_of(n) {
            return Err(err("attention heads", self.num_q_heads));
        }
        if !self.intermediate_size.is_multiple_of(n) {
            return Err(err("MLP intermediate channels", self.intermediate_size));
        }
        let num_kv_heads = if self.num_kv_heads.is_multiple_of(n) {
            self.num_kv_heads / n
        } else if n % self.num_kv_heads == 0 {
            1
        } else {
            return Err(err("KV heads (nor do they divide it)", self.num_kv_heads));
        };
        Ok(ModelSpec {
            num_q_heads: self.num_q_heads / n,
            num_kv_heads,
            intermediate_size: self.intermediate_size / n,
            vocab_size: self.vocab_size.div_ceil(n),
            ..self.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tp2_shard_of_qwen3_14b_by_hand() {
        // Qwen3-14B: 40 query heads, 8 KV heads, head_dim 128, I = 17,408, V = 151,936, 40 layers, h = 5,120.
        let m = ModelSpec::resolve("qwen3-14b").unwrap();
        let s = m.shard(2).unwrap();
        assert_eq!((s.num_q_heads, s.num_kv_heads, s.intermediate_size, s.vocab_size), (20, 4, 8_704, 75_968));
        // KV per token per GPU halves: 2 x 40 x 4 x 128 x 2 = 81,920 B.
        assert_eq!(s.kv_bytes_per_token(), 81_920);
        assert_eq!(m.kv_bytes_per_token(), 2 * s.kv_bytes_per_token());
        // Weights per GPU: everything but the norms halves.
        let norms = m.num_layers * 2 * m.hidden_size + m.hidden_size;
        assert_eq!(s.num_params() - norms, (m.num_params() - norms) / 2);
        // KV heads replicate past their count: TP 16 keeps one of the 8 per GPU.
        assert_eq!(ModelSpec::resolve("llama-3.1-70b").unwrap().shard(16).unwrap().num_kv_heads, 1);
    }

    #[test]
    fn tp_that_does_not_divide_the_heads_is_an_error() {
        let m = ModelSpec::resolve("qwen3-8b").unwrap();
        let e = m.shard(3).unwrap_err().to_string();
        assert!(e.contains("--tp 3 does not divide the 32 attention heads of qwen3-8b"), "{e}");
        assert!(m.shard(0).is_err());
    }

    #[test]
    fn bundled_models_load_with_expected_sizes() {
        // Published parameter counts (billions), rounded: Qwen3 8.2/14.8/32.8, Llama-3.1 8.0/70.6, CodeLlama 33.7.
        let expect = [
            ("qwen3-8b", 8.19),
            ("qwen3-14b", 14.77),
            ("qwen3-32b", 32.76),
            ("llama-3.1-8b", 8.03),
            ("llama-3.1-70b", 70.55),
            ("codellama-34b", 33.74),
        ];
        for (name, billions) in expect {
            let m = ModelSpec::resolve(name).unwrap();
            let got = m.num_params() as f64 / 1e9;
            assert!((got - billions).abs() < 0.01, "{name}: {got}");
        }
        let q32 = ModelSpec::resolve("Qwen3-32B").unwrap();
        assert_eq!(q32.head_dim, 128, "head_dim comes from the config, not hidden/heads = 80");
        assert_eq!(ModelSpec::resolve("qwen3-8b").unwrap().kv_bytes_per_token(), 2 * 36 * 8 * 128 * 2);
    }

    #[test]
    fn defaults_and_errors() {
        let m = ModelSpec::from_json(
            "tiny",
            r#"{"hidden_size":64,"num_hidden_layers":2,"num_attention_heads":4,"intermediate_size":128,"vocab_size":100,"tie_word_embeddings":true}"#,
        )
        .unwrap();
        assert_eq!((m.num_kv_heads, m.head_dim, m.dtype_bytes), (4, 16, 2));
        assert_eq!(m.num_params(), 2 * (64 * 12 * 16 + 64 * 64 + 3 * 64 * 128 + 128) + 6400 + 64);
        let e = ModelSpec::resolve("gpt-5").unwrap_err().to_string();
        assert!(e.contains("unknown model") && e.contains("qwen3-8b") && e.contains("llama-3.1-70b"), "{e}");
        let e = ModelSpec::from_json("x", r#"{"hidden_size":64}"#).unwrap_err().to_string();
        assert!(e.contains("bad config.json"), "{e}");
        let e = ModelSpec::from_json("x", r#"{"hidden_size":64,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":3,"intermediate_size":1,"vocab_size":1}"#).unwrap_err().to_string();
        assert!(e.contains("must divide"), "{e}");
    }

    #[test]
    fn sizes_that_would_overflow_are_refused_with_the_limit() {
        let cfg = |field: &str, v: u64| {
            let mut j: serde_json::Value = serde_json::from_str(
                r#"{"hidden_size":4096,"num_hidden_layers":36,"num_attention_heads":32,"num_key_value_heads":8,
                    "head_dim":128,"intermediate_size":12288,"vocab_size":151936}"#,
            )
            .unwrap();
            j[field] = v.into();
            ModelSpec::from_json("m", &j.to_string())
        };
        assert!(cfg("hidden_size", 4096).is_ok());
        for (field, limit) in [("hidden_size", 1u64 << 20), ("head_dim", 1 << 16), ("vocab_size", 1 << 24)] {
            let e = cfg(field, 1 << 32).unwrap_err().to_string();
            assert!(e.contains(field) && e.contains(&limit.to_string()), "{e}");
        }
        // Each size within its bound, their product not: 16,384 layers of a 2^22-wide MLP.
        let mut j: serde_json::Value = serde_json::from_str(
            r#"{"hidden_size":1048576,"num_hidden_layers":16384,"num_attention_heads":32,"head_dim":128,
                "intermediate_size":4194304,"vocab_size":1000}"#,
        )
        .unwrap();
        let e = ModelSpec::from_json("m", &j.to_string()).unwrap_err().to_string();
        assert!(e.contains("parameters is beyond") && e.contains("2^50"), "{e}");
        j["max_position_embeddings"] = (1u64 << 31).into();
        j["num_hidden_layers"] = 1.into();
        j["intermediate_size"] = 1.into();
        let e = ModelSpec::from_json("m", &j.to_string()).unwrap_err().to_string();
        assert!(e.contains("max_position_embeddings"), "{e}");
    }
}
