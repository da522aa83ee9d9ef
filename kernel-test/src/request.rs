//! The run request on the kernel command line: `ktest=<items>` (PROTOCOL.md, section 2).

use core::fmt;

/// The command-line key of the request.
pub const KEY: &str = "ktest=";

/// Which tests to run, checked against the number of tests in the executable.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The items after `ktest=`; `None` without a token (run everything, honour `ignore`).
    items: Option<&'a str>,
    /// Number of tests in the executable.
    count: usize,
}

/// A request the kernel cannot follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestError<'a> {
    /// The offending item (or the whole token).
    pub item: &'a str,
    pub problem: &'static str,
}

impl fmt::Display for RequestError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad `{KEY}` request `{}`: {}", self.item, self.problem)
    }
}

/// One test to report, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selected {
    pub index: usize,
    /// Run it even if it is flagged `ignore` (it was asked for by index).
    pub requested: bool,
}

impl<'a> Request<'a> {
    /// Reads the request from a whole kernel command line (space-separated words; the request is
    /// the word starting with `ktest=`). `count` is the number of tests in the executable.
    pub fn from_cmdline(cmdline: &'a str, count: usize) -> Result<Self, RequestError<'a>> {
        let mut found = None;
        for word in cmdline.split_ascii_whitespace() {
            if let Some(items) = word.strip_prefix(KEY) {
                if found.is_some() {
                    return Err(RequestError {
                        item: word,
                        problem: "the command line has more than one `ktest=` word",
                    });
                }
                found = Some(items);
            }
        }
        let request = Request {
            items: found,
            count,
        };
        // Check every item now, so a bad request fails before any test runs.
        if let Some(items) = found {
            for item in split_items(items) {
                parse_item(item, count)?;
            }
        }
        Ok(request)
    }

    /// Whether the command line carried a `ktest=` word.
    pub fn is_explicit(&self) -> bool {
        self.items.is_some()
    }

    /// The tests to report, in order.
    pub fn iter(&self) -> impl Iterator<Item = Selected> + 'a {
        let count = self.count;
        let all = match self.items {
            None => Some(0..count),
            Some(_) => None,
        };
        let picked = self.items.into_iter().flat_map(move |items| {
            split_items(items).flat_map(move |item| match parse_item(item, count) {
                Ok((first, last)) => first..last + 1,
                // Checked in `from_cmdline`.
                Err(_) => 0..0,
            })
        });
        all.into_iter()
            .flatten()
            .map(|index| Selected {
                index,
                requested: false,
            })
            .chain(picked.map(|index| Selected {
                index,
                requested: true,
            }))
    }

    /// How many tests [`iter`](Self::iter) yields.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn split_items(items: &str) -> impl Iterator<Item = &str> {
    items.split(',').filter(|item| !item.is_empty())
}

/// An item as an inclusive range of test indices.
fn parse_item(item: &str, count: usize) -> Result<(usize, usize), RequestError<'_>> {
    let bad = |problem| RequestError { item, problem };
    let number = |text: &str| -> Result<usize, RequestError<'_>> {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("expected a test index or a range `first-last`"));
        }
        let n: usize = text.parse().map_err(|_| bad("index too large"))?;
        if n >= count {
            return Err(bad("no test has this index"));
        }
        Ok(n)
    };
    let (first, last) = match item.split_once('-') {
        Some((first, last)) => (number(first)?, number(last)?),
        None => {
            let n = number(item)?;
            (n, n)
        }
    };
    if first > last {
        return Err(bad("range runs backwards"));
    }
    Ok((first, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn indices(cmdline: &str, count: usize) -> Vec<(usize, bool)> {
        Request::from_cmdline(cmdline, count)
            .expect("valid request")
            .iter()
            .map(|s| (s.index, s.requested))
            .collect()
    }

    #[test]
    fn without_a_token_every_test_is_selected() {
        assert_eq!(
            indices("console=ttyS0 quiet", 3),
            [(0, false), (1, false), (2, false)]
        );
        assert_eq!(Request::from_cmdline("", 2).map(|r| r.len()), Ok(2));
    }

    #[test]
    fn items_and_ranges_keep_their_order() {
        assert_eq!(
            indices("quiet ktest=7,0,3-5 x=1", 8),
            [(7, true), (0, true), (3, true), (4, true), (5, true)]
        );
        assert_eq!(indices("ktest=", 4), []);
        assert_eq!(indices("ktest=2-2", 4), [(2, true)]);
    }

    #[test]
    fn bad_requests_name_the_item() {
        let err = |c| Request::from_cmdline(c, 4).expect_err("bad request");
        assert_eq!(err("ktest=1,4").item, "4");
        assert_eq!(err("ktest=3-1").problem, "range runs backwards");
        assert_eq!(err("ktest=x").item, "x");
        assert_eq!(err("ktest=1- ").item, "1-");
        assert_eq!(
            err("ktest=99999999999999999999999").problem,
            "index too large"
        );
        assert!(err("ktest=1 ktest=2").to_string().contains("more than one"));
    }
}
