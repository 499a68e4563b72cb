//! WordPiece tokenization as transformers' `BertTokenizer` does it, on the `tokenizers` crate.
//!
//! A checkpoint's `tokenizer.json` is used when present; otherwise the tokenizer is assembled from
//! `vocab.txt` and `tokenizer_config.json` (lower-casing, accent stripping, Chinese characters),
//! with `[CLS] … [SEP] (… [SEP])` around the text and the special tokens kept whole, so the literal
//! text `[MASK]` is one token.

use std::path::Path;

use serde::Deserialize;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::normalizers::unicode::NFC;
use tokenizers::normalizers::utils::Sequence;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{AddedToken, EncodeInput, Tokenizer, TruncationParams};

use mb_stats_files::error::{Result, input};

/// The special tokens of a BERT vocabulary.
pub const SPECIAL_TOKENS: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

/// One input: a text, or a pair of texts (segments 0 and 1).
#[derive(Debug, Clone, PartialEq)]
pub struct TextInput {
    /// The first (or only) text.
    pub text: String,
    /// The second text of a pair.
    pub pair: Option<String>,
}

/// Token ids of one input, truncated, without padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    /// WordPiece ids including `[CLS]` and `[SEP]`.
    pub ids: Vec<u32>,
    /// Segment of each id.
    pub type_ids: Vec<u32>,
}

/// The `tokenizer_config.json` fields that change tokenization; absent fields take
/// `BertTokenizer`'s defaults.
#[derive(Debug, Deserialize)]
struct TokenizerConfig {
    #[serde(default = "yes")]
    do_lower_case: bool,
    #[serde(default)]
    strip_accents: Option<bool>,
    #[serde(default = "yes")]
    tokenize_chinese_chars: bool,
    #[serde(default)]
    model_max_length: Option<f64>,
}

fn yes() -> bool {
    true
}

/// A BERT tokenizer with truncation to a fixed maximum length.
pub struct BertTokenizer {
    inner: Tokenizer,
    max_length: usize,
    pad_id: u32,
}

impl BertTokenizer {
    /// Load from a checkpoint directory; `max_length` is capped by the model's position limit
    /// (`position_limit`) and the tokenizer's `model_max_length`.
    pub fn load(dir: &Path, max_length: usize, position_limit: usize) -> Result<Self> {
        let config = read_config(&dir.join("tokenizer_config.json"))?;
        let json = dir.join("tokenizer.json");
        let mut inner = if json.is_file() {
            Tokenizer::from_file(&json).map_err(|e| input(format!("{}: {e}", json.display())))?
        } else {
            from_vocab(&dir.join("vocab.txt"), &config)?
        };
        let declared = config
            .model_max_length
            .filter(|m| (1.0..1e9).contains(m))
            .map(|m| m as usize);
        let max_length = max_length.min(position_limit).min(declared.unwrap_or(usize::MAX));
        inner
            .with_truncation(Some(TruncationParams {
                max_length,
                ..Default::default()
            }))
            .map_err(|e| input(format!("{}: {e}", dir.display())))?;
        inner.with_padding(None);
        let pad_id = inner.token_to_id("[PAD]").unwrap_or(0);
        Ok(BertTokenizer {
            inner,
            max_length,
            pad_id,
        })
    }

    /// Longest encoding, special tokens included.
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// Id used to pad batches.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// The id of a token of the vocabulary.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Tokenize many inputs in parallel, keeping their order.
    pub fn encode_all(&self, inputs: &[TextInput]) -> Result<Vec<Tokens>> {
        let batch: Vec<EncodeInput> = inputs
            .iter()
            .map(|i| match &i.pair {
                Some(pair) => (i.text.as_str(), pair.as_str()).into(),
                None => i.text.as_str().into(),
            })
            .collect();
        Ok(self.encode(batch)?.iter().map(tokens_of).collect())
    }

    /// Encode in parallel, special tokens added, truncated to the maximum length.
    fn encode(&self, batch: Vec<EncodeInput>) -> Result<Vec<tokenizers::Encoding>> {
        self.inner
            .encode_batch(batch, true)
            .map_err(|e| input(format!("tokenizer: {e}")))
    }
}

/// The ids and segment ids of an encoding.
fn tokens_of(e: &tokenizers::Encoding) -> Tokens {
    Tokens {
        ids: e.get_ids().to_vec(),
        type_ids: e.get_type_ids().to_vec(),
    }
}

/// One text's word-pieces with the word each came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WordPieces {
    /// The ids, `[CLS]` and `[SEP]` included.
    pub tokens: Tokens,
    /// The word (whitespace- and punctuation-separated unit of the text) of each id; `None` for
    /// the `[CLS]` and `[SEP]` the tokenizer adds.
    pub words: Vec<Option<u32>>,
    /// Whether the text was longer than the maximum length and lost its end.
    pub truncated: bool,
}

impl BertTokenizer {
    /// Tokenize single texts in parallel with their word ids, keeping their order.
    pub fn encode_words(&self, texts: &[&str]) -> Result<Vec<WordPieces>> {
        let batch: Vec<EncodeInput> = texts.iter().map(|&t| t.into()).collect();
        Ok(self
            .encode(batch)?
            .iter()
            .map(|e| WordPieces {
                tokens: tokens_of(e),
                words: e.get_word_ids().to_vec(),
                truncated: !e.get_overflowing().is_empty(),
            })
            .collect())
    }

    /// As [`BertTokenizer::encode_words`], but whole: no text is cut at the maximum length (a
    /// corpus is packed into blocks afterwards).
    pub fn encode_words_whole(&self, texts: &[&str]) -> Result<Vec<WordPieces>> {
        let mut whole = self.inner.clone();
        whole
            .with_truncation(None)
            .map_err(|e| input(format!("tokenizer: {e}")))?;
        let batch: Vec<EncodeInput> = texts.iter().map(|&t| t.into()).collect();
        Ok(whole
            .encode_batch(batch, true)
            .map_err(|e| input(format!("tokenizer: {e}")))?
            .iter()
            .map(|e| WordPieces {
                tokens: tokens_of(e),
                words: e.get_word_ids().to_vec(),
                truncated: false,
            })
            .collect())
    }
}

fn read_config(path: &Path) -> Result<TokenizerConfig> {
    let text = match mb_stats_files::text::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "{}".to_string(),
        Err(e) => return Err(input(format!("{}: {e}", path.display()))),
    };
    serde_json::from_str(&text).map_err(|e| input(format!("{}: {e}", path.display())))
}

/// Assemble the tokenizer `BertTokenizer` would be from `vocab.txt`.
fn from_vocab(vocab: &Path, config: &TokenizerConfig) -> Result<Tokenizer> {
    let bad = |e: &dyn std::fmt::Display| input(format!("{}: {e}", vocab.display()));
    let name = vocab.to_str().ok_or_else(|| bad(&"path is not UTF-8"))?;
    let model = WordPiece::from_file(name)
        .unk_token("[UNK]".into())
        .build()
        .map_err(|e| bad(&e))?;
    let mut tokenizer = Tokenizer::new(model);
    let id = |token: &str| {
        tokenizer
            .token_to_id(token)
            .ok_or_else(|| bad(&format!("no {token} token")))
    };
    let (cls, sep) = (id("[CLS]")?, id("[SEP]")?);
    // BertTokenizer cleans the text and spaces out Chinese characters, then applies NFC, then
    // lower-cases and strips accents; tokenizers' BertNormalizer has no NFC step, so it runs twice
    // around one (without it, "e\u{301}" in a cased model is [UNK] instead of "é").
    let normalizer = Sequence::new(vec![
        BertNormalizer::new(true, config.tokenize_chinese_chars, Some(false), false).into(),
        NFC.into(),
        BertNormalizer::new(false, false, config.strip_accents, config.do_lower_case).into(),
    ]);
    tokenizer.with_normalizer(Some(normalizer)).map_err(|e| bad(&e))?;
    tokenizer.with_pre_tokenizer(Some(BertPreTokenizer));
    let processor = BertProcessing::new(("[SEP]".into(), sep), ("[CLS]".into(), cls));
    tokenizer.with_post_processor(Some(processor));
    let specials: Vec<AddedToken> = SPECIAL_TOKENS
        .iter()
        .filter(|t| tokenizer.token_to_id(t).is_some())
        .map(|t| AddedToken::from(*t, true))
        .collect();
    tokenizer.add_special_tokens(specials).map_err(|e| bad(&e))?;
    Ok(tokenizer)
}
