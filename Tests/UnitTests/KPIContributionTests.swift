import Testing
@testable import Contract
@testable import KPIModel
@testable import KPIStore

/// The KPIs scaled out by partition (`KPIState+Contribution.swift`): each partition's state holds
/// its own facts and every dimension; the merge of their contributions, sent as deltas commit by
/// commit, shows exactly what one state holding everything shows (every figure, derived ones
/// included), whatever the partition count, the commit rhythm and the order partitions report in.
struct KPIContributionTests {
    typealias S = KPIState

    /// The partition a fact belongs to; dimensions go to every partition.
    static func partition(of event: S.Event, among count: Int) -> Int? {
        let key: String
        switch event {
        case .line(let line): key = line.orderID
        case .payment(let payment): key = payment.id
        case .movement(let movement): key = movement.id
        case .customer, .product, .supplier: return nil
        }
        return Int(XXHash64.hash(key) % UInt64(count))
    }

    @Test(arguments: [1, 2, 3, 8])
    func theMergeOfPartitionDeltasEqualsOneState(partitions: Int) {
        let events = KPIRetentionTests.liveLoad(seed: 7)
        var single = S()
        var states = [S](repeating: S(), count: partitions)
        var trackers = [ContributionTracker](repeating: ContributionTracker(), count: partitions)
        var merge = ContributionMerge(partitions: partitions)
        var random = SplitMix64(seed: UInt64(partitions))
        var sinceCommit = [Int](repeating: 0, count: partitions)
        func commit(_ p: Int) {
            let dirty = states[p].takeDirty()
            merge.apply(partition: p, trackers[p].delta(states[p], dirty: dirty))
            sinceCommit[p] = 0
        }
        for (index, (event, origin)) in events.enumerated() {
            _ = single.apply(event, origin: origin)
            let targets = Self.partition(of: event, among: partitions).map { [$0] } ?? Array(0..<partitions)
            for p in targets {
                _ = states[p].apply(event, origin: origin)
                sinceCommit[p] += 1
                // Commits at an uneven rhythm per partition (a batch ends when it ends).
                if random.next() % 7 == 0 { commit(p) }
            }
            // Halfway, one partition's owner rebuilds and replaces its whole contribution.
            if index == events.count / 2 {
                let p = partitions - 1
                _ = states[p].takeDirty()
                merge.replace(partition: p, with: trackers[p].reset(states[p]))
            }
        }
        for p in (0..<partitions).reversed() { commit(p) }
        _ = single.takeDirty()
        KPIRetentionTests.expectSame(KPIRetentionTests.show(merge.state), KPIRetentionTests.show(single), "\(partitions) partitions")
        #expect(KPIView.totals(merge.state)["revenue"] == KPIView.totals(single)["revenue"])
        #expect(merge.state.counts.customers == single.counts.customers && merge.state.counts.orders == single.counts.orders)
    }

    /// Fields merged by maximum follow the largest partition still holding one; summed fields
    /// drop out when every partition's share is gone, and a partition's share cancelling
    /// another's shows nothing.
    @Test func fieldsFollowEveryPartitionsLatestValue() {
        var merge = ContributionMerge(partitions: 3)
        merge.apply(partition: 0, ["x:customers": [10], "cat:toys": [500, 2]])
        merge.apply(partition: 1, ["x:customers": [20], "cat:toys": [-500, -2]])
        #expect(merge.state.counts.customers == 20)
        #expect(merge.state.byCategory["toys"] == nil)
        merge.replace(partition: 1, with: ["cat:toys": [100, 1]])
        #expect(merge.state.counts.customers == 10)
        #expect(merge.state.byCategory["toys"] == S.Money(amount: 600, count: 3))
        merge.apply(partition: 0, ["x:customers": nil, "cat:toys": nil])
        #expect(merge.state.counts.customers == 0)
        #expect(merge.state.byCategory["toys"] == S.Money(amount: 100, count: 1))
        merge.apply(partition: 2, ["x:customers": [5]])
        merge.apply(partition: 1, ["cat:toys": nil])
        #expect(merge.state.counts.customers == 5)
        #expect(merge.state.byCategory.isEmpty)
    }

    @Test func aWholeContributionRoundTripsThroughText() {
        var state = S()
        for (event, origin) in KPIRetentionTests.liveLoad(seed: 3) { _ = state.apply(event, origin: origin) }
        for (_, value) in state.fullContribution() {
            #expect(S.decode(Substring(S.encode(value))) == value)
        }
        var merge = ContributionMerge(partitions: 1)
        merge.replace(partition: 0, with: state.fullContribution())
        KPIRetentionTests.expectSame(KPIRetentionTests.show(merge.state), KPIRetentionTests.show(state), "one partition")
        #expect(S.decode("1 x") == nil)
    }
}
