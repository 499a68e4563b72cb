//! A dictionary-encoded text column: each distinct value is stored once and every row holds a
//! 4-byte code, so the `group`, `task` and `cluster` of tens of millions of rows (a PolyPythias
//! suite) cost 4 bytes a row each instead of a string.

use std::collections::HashMap;
use std::fmt;
use std::ops::Index;
use std::sync::Arc;

/// The code of a null row.
const NULL: u32 = u32::MAX;

/// A text column, dictionary-encoded. Rows compare by value, not by code; columns selected
/// from one share its dictionary.
#[derive(Clone, Default)]
pub struct Texts {
    dictionary: Arc<Dictionary>,
    /// Per row, the index of its value (`NULL` for none).
    codes: Vec<u32>,
}

#[derive(Clone, Default)]
struct Dictionary {
    /// The distinct values, in order of first appearance.
    values: Vec<String>,
    /// Value → its index in `values`.
    lookup: HashMap<String, u32>,
}

impl Texts {
    /// An empty column with room for `rows`.
    pub fn with_capacity(rows: usize) -> Texts {
        Texts {
            codes: Vec::with_capacity(rows),
            ..Texts::default()
        }
    }

    /// `rows` rows of one value.
    pub fn repeat(value: Option<&str>, rows: usize) -> Texts {
        let mut texts = Texts::default();
        let code = texts.code(value);
        texts.codes = vec![code; rows];
        texts
    }

    /// The code of `value`, added to the dictionary when new.
    fn code(&mut self, value: Option<&str>) -> u32 {
        let Some(value) = value else { return NULL };
        // Rows of one value usually come together: one comparison instead of a hash lookup.
        if let Some(&last) = self.codes.last()
            && last != NULL
            && self.dictionary.values[last as usize] == value
        {
            return last;
        }
        if let Some(&code) = self.dictionary.lookup.get(value) {
            return code;
        }
        let dictionary = Arc::make_mut(&mut self.dictionary);
        let code = u32::try_from(dictionary.values.len()).expect("fewer than 2^32 - 1 distinct values");
        dictionary.values.push(value.to_string());
        dictionary.lookup.insert(value.to_string(), code);
        code
    }

    /// Appends a row.
    pub fn push(&mut self, value: Option<&str>) {
        let code = self.code(value);
        self.codes.push(code);
    }

    /// Appends every row of `other`.
    pub fn extend_from(&mut self, other: &Texts) {
        let map: Vec<u32> = other.dictionary.values.iter().map(|v| self.code(Some(v))).collect();
        self.codes.extend(
            other
                .codes
                .iter()
                .map(|&c| if c == NULL { NULL } else { map[c as usize] }),
        );
    }

    /// Row `row`'s value (`None` for null).
    pub fn get(&self, row: usize) -> Option<&str> {
        match self.codes[row] {
            NULL => None,
            code => Some(&self.dictionary.values[code as usize]),
        }
    }

    /// Per row, whether it holds `value` (looked up once, then rows compared by code).
    pub fn equal_to(&self, value: Option<&str>) -> Vec<bool> {
        let code = match value {
            None => Some(NULL),
            Some(value) => self.dictionary.lookup.get(value).copied(),
        };
        self.codes.iter().map(|&c| Some(c) == code).collect()
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.codes.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }

    /// Every row's value in order.
    pub fn iter(&self) -> impl Iterator<Item = Option<&str>> + '_ {
        (0..self.len()).map(|r| self.get(r))
    }

    /// The first null row, if any.
    pub fn first_null(&self) -> Option<usize> {
        self.codes.iter().position(|&c| c == NULL)
    }

    /// The rows `rows` (in that order), sharing this column's dictionary.
    pub fn select(&self, rows: &[usize]) -> Texts {
        Texts {
            dictionary: Arc::clone(&self.dictionary),
            codes: rows.iter().map(|&r| self.codes[r]).collect(),
        }
    }
}

impl<S: AsRef<str>> FromIterator<Option<S>> for Texts {
    fn from_iter<I: IntoIterator<Item = Option<S>>>(rows: I) -> Texts {
        let rows = rows.into_iter();
        let mut texts = Texts::with_capacity(rows.size_hint().0);
        for value in rows {
            texts.push(value.as_ref().map(AsRef::as_ref));
        }
        texts
    }
}

impl<S: AsRef<str>> Extend<Option<S>> for Texts {
    fn extend<I: IntoIterator<Item = Option<S>>>(&mut self, rows: I) {
        for value in rows {
            self.push(value.as_ref().map(AsRef::as_ref));
        }
    }
}

impl<S: AsRef<str>> From<Vec<S>> for Texts {
    /// A column without nulls.
    fn from(values: Vec<S>) -> Texts {
        values.iter().map(|v| Some(v.as_ref())).collect()
    }
}

impl Index<usize> for Texts {
    type Output = str;

    /// Row `row`'s value, `""` for null (for columns that have none, like `group`).
    fn index(&self, row: usize) -> &str {
        self.get(row).unwrap_or("")
    }
}

impl PartialEq for Texts {
    fn eq(&self, other: &Texts) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl fmt::Debug for Texts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_stored_once_and_rows_compare_by_value() {
        let a: Texts = [Some("x"), None, Some("y"), Some("x")].into_iter().collect();
        assert_eq!(a.dictionary.values.len(), 2);
        assert_eq!(
            a.iter().collect::<Vec<_>>(),
            vec![Some("x"), None, Some("y"), Some("x")]
        );
        assert_eq!(&a[1], "");
        assert_eq!(a.first_null(), Some(1));
        let mut b = Texts::repeat(Some("y"), 1);
        b.extend_from(&a.select(&[3, 1]));
        b.push(Some("x"));
        let expected: Texts = [Some("y"), Some("x"), None, Some("x")].into_iter().collect();
        assert_eq!(b, expected, "same rows, other codes");
        assert_ne!(b, a);
    }

    /// Lookups by code (`equal_to`, the repeated-value shortcut of `push`) agree with comparing
    /// each row's value, for values present, absent and null, in runs and interleaved.
    #[test]
    fn code_lookups_agree_with_the_values() {
        let rows = [
            Some("a"),
            Some("a"),
            None,
            Some("b"),
            Some("a"),
            Some("ab"),
            None,
            Some("b"),
        ];
        let texts: Texts = rows.into_iter().collect();
        assert_eq!(texts.iter().collect::<Vec<_>>(), rows);
        assert_eq!(texts.dictionary.values.len(), 3);
        for value in [Some("a"), Some("b"), Some("ab"), Some("c"), Some(""), None] {
            let expected: Vec<bool> = rows.iter().map(|r| *r == value).collect();
            assert_eq!(texts.equal_to(value), expected, "{value:?}");
        }
    }
}
