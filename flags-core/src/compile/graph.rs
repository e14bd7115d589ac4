//! Cycle detection for prerequisite graphs.

/// The edges `(from, to)` that close a cycle in a depth-first walk of
/// `edges` (adjacency lists by node index). Removing them leaves the graph
/// acyclic; an empty result means it already is.
pub(super) fn back_edges(edges: &[Vec<usize>]) -> Vec<(usize, usize)> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let mut marks = vec![Mark::New; edges.len()];
    let mut found = Vec::new();
    for root in 0..edges.len() {
        if marks[root] != Mark::New {
            continue;
        }
        // An explicit stack: configs are untrusted and may chain thousands of flags.
        let mut stack = vec![(root, 0usize)];
        marks[root] = Mark::Open;
        while let Some((node, next)) = stack.last_mut() {
            let node = *node;
            match edges[node].get(*next) {
                Some(&to) => {
                    *next += 1;
                    match marks.get(to) {
                        Some(Mark::New) => {
                            marks[to] = Mark::Open;
                            stack.push((to, 0));
                        }
                        Some(Mark::Open) => found.push((node, to)),
                        _ => {}
                    }
                }
                None => {
                    marks[node] = Mark::Done;
                    stack.pop();
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::back_edges;

    #[test]
    fn finds_the_edge_closing_each_cycle() {
        assert!(back_edges(&[vec![1], vec![2], vec![]]).is_empty());
        assert_eq!(back_edges(&[vec![1], vec![0]]), vec![(1, 0)]);
        assert_eq!(back_edges(&[vec![0]]), vec![(0, 0)]);
        let chain: Vec<Vec<usize>> = (0..10_000).map(|i| vec![(i + 1) % 10_000]).collect();
        assert_eq!(back_edges(&chain), vec![(9_999, 0)]);
    }
}
