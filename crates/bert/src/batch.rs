//! Length-sorted, token-budget batching: inputs of similar length are padded together, and no
//! batch holds more than the budget of padded tokens, so memory is bounded by the budget and not
//! by the size of the data.

use candle_core::{Device, Tensor};

use super::model::BatchInput;
use super::tokenizer::Tokens;

/// Indices of the inputs in each batch, longest inputs first (a batch too large for memory fails
/// at the start, not after an hour). Every input is in exactly one batch; a single input longer
/// than the budget gets a batch of its own. Time: O(n log n).
pub fn plan_batches(lengths: &[usize], token_budget: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(lengths[i]), i));
    let mut batches: Vec<Vec<usize>> = Vec::new();
    for i in order {
        match batches.last_mut() {
            // Sorted longest first, so the batch's first input sets its padded length.
            Some(batch) if (batch.len() + 1) * lengths[batch[0]] <= token_budget => batch.push(i),
            _ => batches.push(vec![i]),
        }
    }
    batches
}

/// Pad the token lists of one batch to a `[batch, length]` input on `device` (padding on the right).
pub fn pad_batch(tokens: &[&Tokens], pad_id: u32, device: &Device) -> candle_core::Result<BatchInput> {
    let length = tokens.iter().map(|t| t.ids.len()).max().unwrap_or(0);
    let mut ids = Vec::with_capacity(tokens.len() * length);
    let mut types = Vec::with_capacity(tokens.len() * length);
    let mut mask = Vec::with_capacity(tokens.len() * length);
    for t in tokens {
        let padding = length - t.ids.len();
        ids.extend(t.ids.iter().copied().chain(std::iter::repeat_n(pad_id, padding)));
        types.extend(t.type_ids.iter().copied().chain(std::iter::repeat_n(0, padding)));
        mask.extend(std::iter::repeat_n(1u32, t.ids.len()).chain(std::iter::repeat_n(0, padding)));
    }
    let shape = (tokens.len(), length);
    Ok(BatchInput {
        input_ids: Tensor::from_vec(ids, shape, device)?,
        token_type_ids: Tensor::from_vec(types, shape, device)?,
        attention_mask: Tensor::from_vec(mask, shape, device)?,
        lengths: tokens.iter().map(|t| t.ids.len()).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_input_once_and_within_budget() {
        let lengths: Vec<usize> = (0..500).map(|i| 3 + (i * 37) % 61).collect();
        let batches = plan_batches(&lengths, 256);
        let mut seen: Vec<usize> = batches.iter().flatten().copied().collect();
        seen.sort();
        assert_eq!(seen, (0..500).collect::<Vec<_>>());
        for batch in &batches {
            let longest = batch.iter().map(|&i| lengths[i]).max().unwrap();
            assert!(batch.len() * longest <= 256, "batch of {} × {longest}", batch.len());
        }
    }

    #[test]
    fn an_input_longer_than_the_budget_is_alone() {
        let batches = plan_batches(&[10, 300, 10], 64);
        assert_eq!(batches, vec![vec![1], vec![0, 2]]);
    }
}
