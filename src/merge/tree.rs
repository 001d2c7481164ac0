//! The k-way merge of sorted sources: a loser (tournament) tree over the sources' head records.
//! Taking the smallest record and replacing it with its source's next costs one comparison per
//! level, log2(k), and moves only source indices (a binary heap of records moves the 80-byte
//! records themselves, twice as often). Ties go to the lower source index, so the order of equal
//! records does not depend on how the tree was built.

use super::record::Record;

/// Records of `k` sorted sources in order; the caller hands out each source's next record.
pub struct Tournament<T: Ord = Record> {
    heads: Vec<Option<T>>,
    /// `nodes[0]` is the winner's source, `nodes[1..k]` the loser of each internal match: the
    /// match at node `p` is between the winners under `2p` and `2p + 1`, and source `i` is leaf
    /// `k + i`.
    nodes: Vec<usize>,
    started: bool,
}

impl<T: Ord> Tournament<T> {
    pub fn new(k: usize) -> Self {
        Tournament {
            heads: (0..k).map(|_| None).collect(),
            nodes: vec![0; k.max(1)],
            started: false,
        }
    }

    /// The next record in order; `fill(i)` gives source `i`'s next record (`None` at its end).
    pub fn next(
        &mut self,
        mut fill: impl FnMut(usize) -> anyhow::Result<Option<T>>,
    ) -> anyhow::Result<Option<T>> {
        let k = self.heads.len();
        if k == 0 {
            return Ok(None);
        }
        if !self.started {
            self.started = true;
            for i in 0..k {
                self.heads[i] = fill(i)?;
            }
            self.build();
        }
        let w = self.nodes[0];
        let Some(record) = self.heads[w].take() else {
            return Ok(None);
        };
        self.heads[w] = fill(w)?;
        self.replay(w);
        Ok(Some(record))
    }

    /// Whether source `a`'s head goes before source `b`'s: an ended source goes last.
    fn less(&self, a: usize, b: usize) -> bool {
        match (&self.heads[a], &self.heads[b]) {
            (Some(x), Some(y)) => x.cmp(y).then(a.cmp(&b)).is_lt(),
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => a < b,
        }
    }

    fn build(&mut self) {
        let k = self.heads.len();
        let mut winners = vec![0usize; 2 * k];
        for i in 0..k {
            winners[k + i] = i;
        }
        for p in (1..k).rev() {
            let (a, b) = (winners[2 * p], winners[2 * p + 1]);
            let (win, lose) = if self.less(a, b) { (a, b) } else { (b, a) };
            winners[p] = win;
            self.nodes[p] = lose;
        }
        self.nodes[0] = winners[1];
    }

    /// Source `i`'s head changed: play its matches up to the root again.
    fn replay(&mut self, i: usize) {
        let k = self.heads.len();
        let mut winner = i;
        let mut p = (k + i) / 2;
        while p >= 1 {
            let other = self.nodes[p];
            if self.less(other, winner) {
                self.nodes[p] = winner;
                winner = other;
            }
            p /= 2;
        }
        self.nodes[0] = winner;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(time: u64) -> Record {
        Record {
            time,
            ids: [0; 24],
            hash: 0,
            data: Vec::new().into(),
            file: 0,
        }
    }

    #[test]
    fn merges_any_number_of_sources_in_order() {
        for k in 0..20usize {
            // Source i holds i, i + k, i + 2k, ... (some empty), plus a shared duplicate.
            let mut sources: Vec<std::vec::IntoIter<u64>> = (0..k)
                .map(|i| {
                    let mut v: Vec<u64> = (0..(i % 4) as u64).map(|j| i as u64 + j * 7).collect();
                    v.push(50);
                    v.sort();
                    v.into_iter()
                })
                .collect();
            let mut want: Vec<u64> = sources.iter().flat_map(|s| s.clone()).collect();
            want.sort();
            let mut t = Tournament::new(k);
            let mut got = Vec::new();
            while let Some(r) = t.next(|i| Ok(sources[i].next().map(rec))).unwrap() {
                got.push(r.time);
            }
            assert_eq!(got, want, "k={k}");
        }
    }

    #[test]
    fn equal_records_come_in_source_order() {
        let mut t = Tournament::new(3);
        let mut left = [1, 1, 1];
        let mut got = Vec::new();
        while let Some(r) = t
            .next(|i| {
                Ok((left[i] > 0).then(|| {
                    left[i] -= 1;
                    Record {
                        file: i as u32,
                        ..rec(5)
                    }
                }))
            })
            .unwrap()
        {
            got.push(r.file);
        }
        assert_eq!(got, [0, 1, 2]);
    }
}
