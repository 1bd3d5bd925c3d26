//! The inverted index over one collection (a mailbox, a calendar, a chat, a drive): token →
//! ascending document positions, plus a sorted vocabulary for `term*`. It narrows a compiled
//! [`Query`] to candidate positions, which [`PostingIndex::matching`] then verifies.

use std::collections::HashMap;

use super::{
    eval::{Node, Query, TextTest},
    lex::{Op, SearchText},
};

/// An inverted index over one collection of documents: token → ascending document positions.
///
/// It narrows a query to candidates ([`PostingIndex::candidates`]); the candidates are then
/// verified with [`Query::matches`], so the index only ever has to give a superset of the matches.
#[derive(Debug, Default)]
pub struct PostingIndex {
    postings: HashMap<Box<str>, Vec<u32>>,
    /// The tokens in sorted order, for `prefix*` terms.
    vocab: Vec<Box<str>>,
}

impl PostingIndex {
    /// Indexes documents in position order.
    pub fn build<'a>(texts: impl IntoIterator<Item = &'a SearchText>) -> Self {
        let mut postings: HashMap<Box<str>, Vec<u32>> = HashMap::new();
        for (pos, text) in texts.into_iter().enumerate() {
            let pos = pos as u32;
            for token in text.tokens() {
                match postings.get_mut(token) {
                    Some(list) => {
                        if list.last() != Some(&pos) {
                            list.push(pos);
                        }
                    }
                    None => {
                        postings.insert(token.into(), vec![pos]);
                    }
                }
            }
        }
        for list in postings.values_mut() {
            list.shrink_to_fit();
        }
        let mut vocab: Vec<Box<str>> = postings.keys().cloned().collect();
        vocab.sort_unstable();
        Self { postings, vocab }
    }

    /// The positions of the documents containing `token`.
    pub fn get(&self, token: &str) -> Option<&Vec<u32>> {
        self.postings.get(token)
    }

    /// Approximate heap bytes held (keys, lists, table slots).
    pub fn heap_bytes(&self) -> usize {
        let slot = std::mem::size_of::<(Box<str>, Vec<u32>)>() + 1;
        self.postings.iter().map(|(k, v)| 2 * k.len() + 4 * v.capacity()).sum::<usize>()
            + self.postings.capacity() * slot
            + self.vocab.capacity() * std::mem::size_of::<Box<str>>()
    }

    fn token(&self, token: &str, prefix: bool) -> Option<Vec<u32>> {
        if !prefix {
            return Some(self.get(token).cloned().unwrap_or_default());
        }
        if token.is_empty() {
            return None;
        }
        let start = self.vocab.partition_point(|t| &**t < token);
        let mut out: Vec<u32> = Vec::new();
        let mut lists = 0;
        for t in self.vocab[start..].iter().take_while(|t| t.starts_with(token)) {
            out.extend_from_slice(&self.postings[t]);
            lists += 1;
        }
        if lists > 1 {
            out.sort_unstable();
            out.dedup();
        }
        Some(out)
    }

    fn phrase(&self, tokens: &[String]) -> Option<Vec<u32>> {
        if tokens.iter().any(String::is_empty) {
            return None;
        }
        let mut lists: Vec<&[u32]> = Vec::with_capacity(tokens.len());
        for t in tokens {
            lists.push(self.get(t).map(Vec::as_slice).unwrap_or(&[]));
        }
        lists.sort_by_key(|l| l.len());
        let Some((first, rest)) = lists.split_first() else { return Some(Vec::new()) };
        Some(rest.iter().fold(first.to_vec(), |acc, l| intersect(&acc, l)))
    }

    /// A superset of the positions `query` matches, ascending; `None` when the index cannot
    /// narrow it (every document is a candidate). `in_text(name)` says whether the text of the
    /// property `name` is part of the indexed text (so `name:term` can use the postings).
    pub fn candidates(&self, query: &Query, in_text: &dyn Fn(&str) -> bool) -> Option<Vec<u32>> {
        self.node(&query.root, in_text)
    }

    /// Whether [`PostingIndex::candidates`] gives exactly the matches of `query` (no need to
    /// verify them): only terms of one token (`term`, `term*`) combined by AND and OR.
    pub fn is_exact(query: &Query) -> bool {
        fn exact(node: &Node) -> bool {
            match node {
                Node::Token(t, _) => !t.is_empty(),
                Node::And(parts) | Node::Or(parts) => !parts.is_empty() && parts.iter().all(exact),
                _ => false,
            }
        }
        exact(&query.root)
    }

    /// The positions (ascending) of the documents `query` matches among `len`: the candidates,
    /// verified by `is_match` unless the candidates are exact, or every position verified when the
    /// index cannot narrow the query. `in_text` is as for [`PostingIndex::candidates`];
    /// `is_match(i)` should be `query.matches(document i)`.
    pub fn matching(
        &self,
        len: usize,
        query: &Query,
        in_text: &dyn Fn(&str) -> bool,
        mut is_match: impl FnMut(u32) -> bool,
    ) -> Vec<u32> {
        match self.candidates(query, in_text) {
            Some(candidates) if Self::is_exact(query) => candidates,
            Some(candidates) => candidates.into_iter().filter(|i| is_match(*i)).collect(),
            None => (0..len as u32).filter(|i| is_match(*i)).collect(),
        }
    }

    fn node(&self, node: &Node, in_text: &dyn Fn(&str) -> bool) -> Option<Vec<u32>> {
        match node {
            Node::All | Node::Not(_) => None,
            Node::Token(t, prefix) => self.token(t, *prefix),
            Node::Phrase(tokens) => self.phrase(tokens),
            Node::And(parts) => {
                let mut sets: Vec<Vec<u32>> =
                    parts.iter().filter_map(|p| self.node(p, in_text)).collect();
                sets.sort_by_key(Vec::len);
                let mut it = sets.into_iter();
                let first = it.next()?;
                Some(it.fold(first, |acc, s| intersect(&acc, &s)))
            }
            Node::Or(parts) => {
                let mut out = Vec::new();
                for p in parts {
                    out = union(&out, &self.node(p, in_text)?);
                }
                Some(out)
            }
            Node::Prop { name, op: Op::Colon | Op::Eq, test } if in_text(name) => {
                match &test.text {
                    TextTest::Never => Some(Vec::new()),
                    TextTest::Token(t, prefix) => self.token(t, *prefix),
                    TextTest::Phrase(tokens) => self.phrase(tokens),
                }
            }
            Node::Prop { .. } => None,
        }
    }
}

/// Intersection of two ascending lists.
pub fn intersect(a: &[u32], b: &[u32]) -> Vec<u32> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// Union of two ascending lists.
pub fn union(a: &[u32], b: &[u32]) -> Vec<u32> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(a.len() + b.len());
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}
