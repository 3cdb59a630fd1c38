//! The caller's schedule -> micro-batches (length-grouped) -> padded tensors
//! with answer-only labels.

use super::encode::{ExampleKind, TrainExample};
use super::KindCounts;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use tch::{Device, Kind, Tensor};

/// Label of a position that is not scored (prompt, padding), as in PyTorch.
pub const IGNORE: i64 = crate::model::llama::IGNORE_INDEX;

/// A 64-bit mix (splitmix64's finaliser): nearby seeds give unrelated streams.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Seed of libtorch's generator (LoRA dropout) for global micro-batch `m`.
pub(crate) fn micro_batch_seed(seed: u64, m: u64) -> i64 {
    (mix64(seed ^ mix64(m)) >> 1) as i64
}

/// Seed of the shuffle of chunk `c`'s micro-batches.
fn chunk_seed(seed: u64, c: u64) -> u64 {
    mix64(seed ^ mix64(c ^ 0x6C65_6E67_7468_5F67)) // "length_g"
}

/// The feed: the schedule repeated as often as needed, cut into micro-batches.
///
/// Positions `p < fed` of the feed read `schedule[p % schedule.len()]` (wrapping
/// round when the run needs more than the schedule holds); when `fed` is not a
/// whole number of micro-batches the last one is short, and any after it empty. Every `group`
/// micro-batches' worth of consecutive positions form a chunk, which is sorted
/// by length, cut into micro-batches and those shuffled: padding drops, while
/// anything ordered at a coarser scale than a chunk (a curriculum's phases)
/// keeps its order. `group` 1 means no grouping. A chunk is a pure function of
/// its index, so a resumed run sees the same micro-batches.
pub(crate) struct Feed<'a> {
    schedule: &'a [usize],
    lengths: Vec<usize>,
    batch_size: usize,
    group: usize,
    seed: u64,
    fed: usize,
    cached: Option<(usize, Vec<Vec<usize>>)>,
}

impl<'a> Feed<'a> {
    /// `schedule` must be non-empty with indices into `lengths` (checked by the caller).
    pub(crate) fn new(schedule: &'a [usize], lengths: Vec<usize>, batch_size: usize, group: usize, seed: u64, fed: usize) -> Feed<'a> {
        Feed { schedule, lengths, batch_size: batch_size.max(1), group: group.max(1), seed, fed, cached: None }
    }

    /// Example indices of global micro-batch `m`.
    pub(crate) fn micro_batch(&mut self, m: usize) -> Vec<usize> {
        let c = m / self.group;
        if self.cached.as_ref().is_none_or(|(cached, _)| *cached != c) {
            self.cached = Some((c, self.chunk(c)));
        }
        match &self.cached {
            Some((_, chunk)) => chunk.get(m % self.group).cloned().unwrap_or_default(),
            None => Vec::new(),
        }
    }

    fn chunk(&self, c: usize) -> Vec<Vec<usize>> {
        let positions = c * self.group * self.batch_size..((c + 1) * self.group * self.batch_size).min(self.fed);
        let mut items: Vec<usize> = positions.map(|p| self.schedule[p % self.schedule.len()]).collect();
        if self.group == 1 {
            return vec![items];
        }
        // Stable: equal lengths keep their schedule order.
        items.sort_by_key(|&i| self.lengths[i]);
        let mut batches: Vec<Vec<usize>> = items.chunks(self.batch_size).map(<[usize]>::to_vec).collect();
        batches.shuffle(&mut StdRng::seed_from_u64(chunk_seed(self.seed, c as u64)));
        batches
    }
}

/// Positions scored in `ex` once labels are shifted: every target token with a token before it.
pub(crate) fn supervised_tokens(ex: &TrainExample) -> usize {
    if ex.prompt_ids.is_empty() {
        ex.target_ids.len().saturating_sub(1)
    } else {
        ex.target_ids.len()
    }
}

/// Next-token labels for a row padded to `width`: entry `j` is the token at
/// `j + 1` when that token is part of the target, else [`IGNORE`]. Length `width - 1`.
pub(crate) fn shifted_labels(ex: &TrainExample, width: usize) -> Vec<i64> {
    let p = ex.prompt_ids.len();
    let n = ex.len();
    (1..width).map(|k| if k >= p && k < n { i64::from(ex.target_ids[k - p]) } else { IGNORE }).collect()
}

/// A right-padded micro-batch ready for the model, with what it costs.
pub(crate) struct MicroBatch {
    /// [b, t] token ids, padding = `pad_id`.
    pub input_ids: Tensor,
    /// [b, t] 0..len-1 per row (padding continues the count; it is never scored).
    pub positions: Tensor,
    /// [b, t - 1] next-token labels, [`IGNORE`] off the target.
    pub labels: Tensor,
    pub examples: KindCounts,
    /// Real (non-padding) tokens read.
    pub input_tokens: KindCounts,
    pub target_tokens: KindCounts,
    /// Positions computed, padding included (b × t).
    pub padded_tokens: u64,
}

pub(crate) fn collate(rows: &[&TrainExample], pad_id: u32, device: Device) -> MicroBatch {
    let width = rows.iter().map(|e| e.len()).max().unwrap_or(0).max(2);
    let b = rows.len();
    let mut ids = Vec::with_capacity(b * width);
    let mut labels = Vec::with_capacity(b * (width - 1));
    let (mut examples, mut input_tokens, mut target_tokens) = (KindCounts::default(), KindCounts::default(), KindCounts::default());
    for ex in rows {
        ids.extend(ex.prompt_ids.iter().chain(&ex.target_ids).map(|&t| i64::from(t)));
        ids.extend(std::iter::repeat_n(i64::from(pad_id), width - ex.len()));
        labels.extend(shifted_labels(ex, width));
        examples.add(ex.kind, 1);
        input_tokens.add(ex.kind, ex.len() as u64);
        target_tokens.add(ex.kind, ex.target_ids.len() as u64);
    }
    let (b, w) = (b as i64, width as i64);
    let positions = Tensor::arange(w, (Kind::Int64, Device::Cpu)).unsqueeze(0).expand([b, w], false).contiguous();
    MicroBatch {
        input_ids: Tensor::from_slice(&ids).view([b, w]).to_device(device),
        positions: positions.to_device(device),
        labels: Tensor::from_slice(&labels).view([b, w - 1]).to_device(device),
        examples,
        input_tokens,
        target_tokens,
        padded_tokens: (b * w) as u64,
    }
}

impl KindCounts {
    pub(crate) fn add(&mut self, kind: ExampleKind, n: u64) {
        match kind {
            ExampleKind::Span => self.span += n,
            ExampleKind::Document => self.document += n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(p: usize, t: usize) -> TrainExample {
        TrainExample { prompt_ids: (1..=p as u32).collect(), target_ids: (100..100 + t as u32).collect(), kind: ExampleKind::Span, pair: 0 }
    }

    #[test]
    fn labels_score_only_target_tokens() {
        // prompt 1 2 3, target 100 101, padded to 7: inputs 1 2 3 100 101 pad pad
        let labels = shifted_labels(&ex(3, 2), 7);
        assert_eq!(labels, [IGNORE, IGNORE, 100, 101, IGNORE, IGNORE]);
        assert_eq!(supervised_tokens(&ex(3, 2)), 2);
        assert_eq!(supervised_tokens(&ex(0, 2)), 1);
        assert_eq!(shifted_labels(&ex(0, 2), 2), [101]);
    }

    #[test]
    fn collate_pads_right_and_counts() {
        let a = ex(3, 2);
        let mut d = ex(1, 1);
        d.kind = ExampleKind::Document;
        let mb = collate(&[&a, &d], 0, Device::Cpu);
        assert_eq!(mb.input_ids.size(), [2, 5]);
        let ids: Vec<i64> = Vec::try_from(mb.input_ids.view([-1])).unwrap();
        assert_eq!(ids, [1, 2, 3, 100, 101, 1, 100, 0, 0, 0]);
        let labels: Vec<i64> = Vec::try_from(mb.labels.view([-1])).unwrap();
        assert_eq!(labels, [IGNORE, IGNORE, 100, 101, 100, IGNORE, IGNORE, IGNORE]);
        assert_eq!(mb.padded_tokens, 10);
        assert_eq!(mb.input_tokens, KindCounts { span: 5, document: 2 });
        assert_eq!(mb.target_tokens, KindCounts { span: 2, document: 1 });
        assert_eq!(mb.examples, KindCounts { span: 1, document: 1 });
    }

    #[test]
    fn grouping_sorts_within_chunks_and_keeps_phases() {
        // 16 examples: 0..8 are "spans" of mixed lengths, 8..16 "documents".
        let lengths: Vec<usize> = (0..16).map(|i| if i < 8 { 1 + (i * 5) % 8 } else { 20 + (i * 3) % 8 }).collect();
        let schedule: Vec<usize> = (0..16).collect();
        let mut feed = Feed::new(&schedule, lengths.clone(), 2, 4, 7, 16);
        let batches: Vec<Vec<usize>> = (0..8).map(|m| feed.micro_batch(m)).collect();
        // Chunk 0 (micro-batches 0..4) holds exactly the first 8 schedule entries.
        let mut first: Vec<usize> = batches[..4].concat();
        first.sort_unstable();
        assert_eq!(first, (0..8).collect::<Vec<_>>());
        // Within a micro-batch lengths are neighbours in sorted order.
        for b in &batches {
            let (x, y) = (lengths[b[0]], lengths[b[1]]);
            assert!(x.abs_diff(y) <= 1, "{b:?}: {x} vs {y}");
        }
        // Same seed, same feed; fetching out of order changes nothing.
        let mut again = Feed::new(&schedule, lengths, 2, 4, 7, 16);
        assert_eq!(again.micro_batch(6), batches[6]);
        assert_eq!(again.micro_batch(1), batches[1]);
    }

    #[test]
    fn feed_wraps_round_the_schedule() {
        let schedule = [3, 1, 2];
        let mut feed = Feed::new(&schedule, vec![1; 4], 2, 1, 0, 8);
        let all: Vec<usize> = (0..4).flat_map(|m| feed.micro_batch(m)).collect();
        assert_eq!(all, [3, 1, 2, 3, 1, 2, 3, 1]);
    }

    #[test]
    fn a_feed_that_ends_inside_a_micro_batch_ends_there() {
        let schedule = [4, 0, 3, 1, 2];
        for group in [1, 4] {
            let mut feed = Feed::new(&schedule, vec![1; 5], 2, group, 0, 5);
            let batches: Vec<Vec<usize>> = (0..4).map(|m| feed.micro_batch(m)).collect();
            let mut sizes: Vec<usize> = batches[..3].iter().map(Vec::len).collect();
            sizes.sort_unstable();
            assert_eq!((sizes, batches[3].len()), (vec![1, 2, 2], 0), "group {group}");
            let mut fed: Vec<usize> = batches.concat();
            fed.sort_unstable();
            assert_eq!(fed, [0, 1, 2, 3, 4], "every entry once (group {group})");
        }
    }
}
