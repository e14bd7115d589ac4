//! Checks of prerequisite graphs: cycles, and how deep and how costly one
//! evaluation can recurse through prerequisites.
//!
//! Evaluation decides each prerequisite by recursion without memoising (that
//! would need memory per call), so the compiler bounds both the recursion
//! depth and the total number of prerequisite evaluations one flag can cause;
//! an attacker-sized or accidental config (a 3 000-link chain, or each flag
//! requiring the previous one twice) is rejected instead of overflowing the
//! stack or running for ever.

/// Longest chain of prerequisites below one flag.
pub(crate) const MAX_DEPTH: u32 = 32;
/// Most prerequisite evaluations one flag's evaluation may cause, counting repeats.
pub(crate) const MAX_EVALUATIONS: u32 = 256;

/// Why a node's prerequisites cannot all be kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Problem {
    /// An edge of this node closes a cycle: its nodes in order, starting
    /// with this one, each requiring the next and the last requiring the first.
    Cycle(Vec<usize>),
    /// The chain below the node is longer than [`MAX_DEPTH`].
    TooDeep,
    /// Evaluating the node would evaluate more than [`MAX_EVALUATIONS`] prerequisites.
    TooCostly,
}

/// The problems of the graph `edges` (adjacency lists by node index), as
/// `(node, problem)`. Dropping every requirement of the nodes named leaves a
/// graph that is acyclic and within the bounds.
pub(crate) fn check(edges: &[Vec<usize>]) -> Vec<(usize, Problem)> {
    let (cycles, post_order) = walk(edges);
    let mut on_cycle = vec![false; edges.len()];
    for cycle in &cycles {
        on_cycle[cycle[0]] = true;
    }
    let mut problems: Vec<(usize, Problem)> = cycles
        .into_iter()
        .map(|cycle| (cycle[0], Problem::Cycle(cycle)))
        .collect();
    // (depth, evaluations) per node; children come before parents in post-order.
    let mut measure = vec![(0u32, 0u32); edges.len()];
    for &node in &post_order {
        if on_cycle[node] {
            continue;
        }
        let (mut depth, mut evaluations) = (0u32, 0u32);
        for &parent in &edges[node] {
            let (d, e) = measure.get(parent).copied().unwrap_or_default();
            depth = depth.max(d.saturating_add(1));
            evaluations = evaluations.saturating_add(e.saturating_add(1));
        }
        measure[node] = (depth, evaluations);
        if depth > MAX_DEPTH {
            problems.push((node, Problem::TooDeep));
            measure[node] = (0, 0);
        } else if evaluations > MAX_EVALUATIONS {
            problems.push((node, Problem::TooCostly));
            measure[node] = (0, 0);
        }
    }
    problems
}

/// Depth-first walk: the cycle each edge closing one closes (from that
/// edge's node, see [`Problem::Cycle`]), and the nodes in post-order.
fn walk(edges: &[Vec<usize>]) -> (Vec<Vec<usize>>, Vec<usize>) {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let mut marks = vec![Mark::New; edges.len()];
    let mut cycles = Vec::new();
    let mut post_order = Vec::with_capacity(edges.len());
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
                        Some(Mark::Open) => cycles.push(cycle_closed_by(&stack, node, to)),
                        _ => {}
                    }
                }
                None => {
                    marks[node] = Mark::Done;
                    post_order.push(node);
                    stack.pop();
                }
            }
        }
    }
    (cycles, post_order)
}

/// The cycle that the edge `from` -> `to` closes while the walk's `stack`
/// holds the path down to `from`: `from`, then `to` and the path to `from`.
fn cycle_closed_by(stack: &[(usize, usize)], from: usize, to: usize) -> Vec<usize> {
    let start = stack.iter().position(|&(node, _)| node == to).unwrap_or(0);
    let mut cycle = vec![from];
    cycle.extend(
        stack[start..]
            .iter()
            .map(|&(node, _)| node)
            .filter(|&n| n != from),
    );
    cycle
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_each_cycle_in_order_from_the_edge_closing_it() {
        assert!(check(&[vec![1], vec![2], vec![]]).is_empty());
        assert_eq!(
            check(&[vec![1], vec![0]]),
            vec![(1, Problem::Cycle(vec![1, 0]))]
        );
        assert_eq!(check(&[vec![0]]), vec![(0, Problem::Cycle(vec![0]))]);
        // 0 -> 1 -> 3 -> 0, reached from 2.
        assert_eq!(
            check(&[vec![1], vec![3], vec![0], vec![0]]),
            vec![(3, Problem::Cycle(vec![3, 0, 1]))]
        );
    }

    #[test]
    fn bounds_depth_without_recursing_itself() {
        let chain: Vec<Vec<usize>> = (0..10_000)
            .map(|i| if i == 0 { vec![] } else { vec![i - 1] })
            .collect();
        let problems = check(&chain);
        // Node 33 is the first too deep; cutting it resets the count, so every 34th fails.
        assert_eq!(problems.first(), Some(&(33, Problem::TooDeep)));
        assert!(problems.iter().all(|(_, p)| *p == Problem::TooDeep));
        let ok: Vec<Vec<usize>> = (0..=32)
            .map(|i| if i == 0 { vec![] } else { vec![i - 1] })
            .collect();
        assert!(check(&ok).is_empty());
    }

    #[test]
    fn bounds_the_evaluations_of_fan_outs() {
        // Each node requires the previous twice: 2, 6, 14, 30, 62, 126, 254, 510 evaluations.
        let doubling: Vec<Vec<usize>> = (0..9)
            .map(|i| if i == 0 { vec![] } else { vec![i - 1, i - 1] })
            .collect();
        assert_eq!(check(&doubling), vec![(8, Problem::TooCostly)]);
    }
}
