//! Dropout of a training pass, applied by the model's forward pass when it trains.

use std::cell::RefCell;

use candle_core::Tensor;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::Rng;

/// Dropout of a training pass: inverted dropout (kept values scaled by `1 / (1 - p)`), masks
/// drawn from one random stream (fine-tuning gives it the seed's dropout stream).
pub struct Dropout {
    hidden: f32,
    attention: f32,
    rng: RefCell<ChaCha8Rng>,
}

impl Dropout {
    /// Dropout at rates `hidden` (hidden states) and `attention` (attention probabilities),
    /// masks drawn from `rng`.
    pub fn new(hidden: f32, attention: f32, rng: ChaCha8Rng) -> Self {
        Dropout {
            hidden,
            attention,
            rng: RefCell::new(rng),
        }
    }

    /// How far its random stream has advanced (for resuming a training run exactly).
    pub fn position(&self) -> u128 {
        self.rng.borrow().get_word_pos()
    }

    /// Continue its random stream from `position`.
    pub fn set_position(&self, position: u128) {
        self.rng.borrow_mut().set_word_pos(position);
    }

    /// `x` after hidden-state dropout.
    pub fn hidden(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.apply(x, self.hidden)
    }

    /// `x` after attention-probability dropout.
    pub fn attention(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.apply(x, self.attention)
    }

    /// `x` after dropout at rate `p` (a classification head's own rate).
    pub fn apply(&self, x: &Tensor, p: f32) -> candle_core::Result<Tensor> {
        if p <= 0.0 {
            return Ok(x.clone());
        }
        let scale = 1.0 / (1.0 - p);
        let mut rng = self.rng.borrow_mut();
        let mask: Vec<f32> = (0..x.elem_count())
            .map(|_| if unit_f32(&mut rng) < p { 0.0 } else { scale })
            .collect();
        let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
        x * mask
    }
}

/// A uniform number in `[0, 1)` with 24 random bits.
fn unit_f32(rng: &mut ChaCha8Rng) -> f32 {
    (rng.next_u32() >> 8) as f32 * (1.0 / (1u32 << 24) as f32)
}
