//! Where new partitions' replicas go, as Kafka's controller assigns them
//! (`ReplicaPlacer` / `AdminUtils.assignReplicasToBrokers`): the first replica of each
//! partition (its preferred leader) goes round the brokers from a random start, so leaders
//! spread evenly, and the others follow it. When brokers name racks (`broker.rack`), the
//! brokers are listed rack by rack in turn and each partition's replicas take as many racks as
//! there are before any rack takes a second (a broker without a rack counts as one rack of
//! its own kind, as if its rack were empty).

use crate::replica::NodeId;
use std::collections::{BTreeMap, BTreeSet};

/// `partitions` partitions of `factor` replicas over `brokers` (id, rack; sorted by id, at
/// least `factor` of them). `start` and `shift` are random draws below the broker count.
pub fn assign(
    brokers: &[(NodeId, Option<String>)],
    partitions: usize,
    factor: usize,
    start: usize,
    shift: usize,
) -> Vec<Vec<NodeId>> {
    let count = brokers.len();
    if brokers.iter().all(|(_, rack)| rack.is_none()) {
        return (0..partitions)
            .map(|p| {
                (0..factor)
                    .map(|r| brokers[(start + p + r) % count].0)
                    .collect()
            })
            .collect();
    }
    let arranged = rack_alternated(brokers);
    let rack_of: BTreeMap<NodeId, &str> = brokers
        .iter()
        .map(|(id, rack)| (*id, rack.as_deref().unwrap_or("")))
        .collect();
    let racks = rack_of.values().collect::<BTreeSet<_>>().len();
    let mut shift = shift;
    (0..partitions)
        .map(|p| {
            if p > 0 && p % count == 0 {
                shift += 1;
            }
            let first = (p + start) % count;
            let leader = arranged[first];
            let mut replicas = vec![leader];
            let mut racks_used = BTreeSet::from([rack_of[&leader]]);
            let mut k = 0;
            while replicas.len() < factor {
                let broker = arranged[follower_index(first, shift * racks, k, count)];
                let rack = rack_of[&broker];
                let new_rack = !racks_used.contains(rack) || racks_used.len() == racks;
                if new_rack && !replicas.contains(&broker) {
                    replicas.push(broker);
                    racks_used.insert(rack);
                }
                k += 1;
            }
            replicas
        })
        .collect()
}

/// The brokers listed one rack after another in turn (racks by name, brokers by id within
/// each): racks a, b with brokers a1 a2 b1 give a1 b1 a2.
fn rack_alternated(brokers: &[(NodeId, Option<String>)]) -> Vec<NodeId> {
    let mut by_rack: BTreeMap<&str, Vec<NodeId>> = BTreeMap::new();
    for (id, rack) in brokers {
        by_rack
            .entry(rack.as_deref().unwrap_or(""))
            .or_default()
            .push(*id);
    }
    let deepest = by_rack.values().map(Vec::len).max().unwrap_or(0);
    (0..deepest)
        .flat_map(|i| by_rack.values().filter_map(move |ids| ids.get(i).copied()))
        .collect()
}

/// Where the `k`th candidate for a follower of the replica at `first` is (Kafka's
/// `replicaIndex`): never `first` itself, moving on by one for each candidate.
fn follower_index(first: usize, shift: usize, k: usize, count: usize) -> usize {
    let step = 1 + (shift + k) % (count - 1);
    (first + step) % count
}

#[cfg(test)]
mod tests {
    use super::*;

    fn racked(spec: &[(NodeId, &str)]) -> Vec<(NodeId, Option<String>)> {
        spec.iter()
            .map(|(id, rack)| (*id, Some(rack.to_string())))
            .collect()
    }

    #[test]
    fn brokers_alternate_rack_by_rack() {
        let brokers = racked(&[(1, "a"), (2, "a"), (3, "b"), (4, "c"), (5, "c"), (6, "a")]);
        assert_eq!(rack_alternated(&brokers), vec![1, 3, 4, 2, 5, 6]);
    }

    /// Every partition's replicas are on distinct brokers and on as many racks as the factor
    /// allows; leaders and replicas spread evenly over the brokers; for every start and shift.
    #[test]
    fn replicas_take_every_rack_before_any_takes_two_and_spread_evenly() {
        let cases: &[(&[(NodeId, &str)], usize)] = &[
            (
                &[(1, "a"), (2, "a"), (3, "b"), (4, "b"), (5, "c"), (6, "c")],
                3,
            ),
            (&[(1, "a"), (2, "b"), (3, "c")], 3),
            (&[(1, "a"), (2, "a"), (3, "a"), (4, "b")], 2),
            (&[(1, "a"), (2, "a"), (3, "b")], 3),
            (&[(1, "x"), (2, "y"), (3, "x"), (4, "y"), (5, "z")], 2),
        ];
        for (spec, factor) in cases {
            let brokers = racked(spec);
            let racks: BTreeSet<&str> = spec.iter().map(|(_, r)| *r).collect();
            let rack_of: BTreeMap<NodeId, &str> = spec.iter().copied().collect();
            for start in 0..brokers.len() {
                for shift in 0..brokers.len() {
                    let partitions = brokers.len() * 4;
                    let placed = assign(&brokers, partitions, *factor, start, shift);
                    let mut leaders: BTreeMap<NodeId, usize> = BTreeMap::new();
                    let mut replicas: BTreeMap<NodeId, usize> = BTreeMap::new();
                    for p in &placed {
                        assert_eq!(p.len(), *factor, "{spec:?}");
                        let distinct: BTreeSet<_> = p.iter().collect();
                        assert_eq!(distinct.len(), *factor, "{p:?} of {spec:?}");
                        let on: BTreeSet<_> = p.iter().map(|id| rack_of[id]).collect();
                        assert_eq!(on.len(), (*factor).min(racks.len()), "{p:?} of {spec:?}");
                        *leaders.entry(p[0]).or_default() += 1;
                        for id in p {
                            *replicas.entry(*id).or_default() += 1;
                        }
                    }
                    assert!(
                        leaders.values().all(|&n| n == 4),
                        "leaders {leaders:?} of {spec:?}"
                    );
                    assert_eq!(replicas.len(), brokers.len(), "{spec:?}");
                }
            }
        }
    }

    #[test]
    fn without_racks_replicas_follow_their_leader_round_the_brokers() {
        let brokers: Vec<_> = [1, 2, 3].iter().map(|&id| (id, None)).collect();
        assert_eq!(
            assign(&brokers, 4, 2, 1, 0),
            vec![vec![2, 3], vec![3, 1], vec![1, 2], vec![2, 3]]
        );
        let one = vec![(7, Some("r".to_string()))];
        assert_eq!(assign(&one, 2, 1, 0, 0), vec![vec![7], vec![7]]);
    }
}
