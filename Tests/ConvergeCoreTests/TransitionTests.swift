import ConvergeCore
import Testing

@Suite struct TransitionTests {
    /// The table of DESIGN §3, written out independently of the implementation.
    static let allowed: Set<String> = [
        "PROPOSED>APPROVED", "PROPOSED>REJECTED", "PROPOSED>ABORTED", "APPROVED>RUNNING", "PENDING>RUNNING",
        "APPROVED>ABORTED", "PENDING>ABORTED", "RUNNING>COMPLETED", "RUNNING>FAILED", "RUNNING>ABORTED",
    ]

    static let pairs = Deployment.Status.allCases.flatMap { from in Deployment.Status.allCases.map { (from, $0) } }

    @Test(arguments: pairs)
    func transition_allowsExactlyTheDesignTable(from: Deployment.Status, to: Deployment.Status) {
        let expected = Self.allowed.contains("\(from.rawValue)>\(to.rawValue)")
        do {
            try transition(from: from, to: to)
            #expect(expected, "\(from) -> \(to) should be refused")
        } catch {
            #expect(!expected, "\(from) -> \(to) should be allowed")
            #expect(error.code == .failedPrecondition)
            #expect(error.message == "deployment cannot move from \(from.rawValue) to \(to.rawValue)")
        }
    }

    @Test func allowedTransitions_listsTheTable() {
        let listed = Set(Deployment.Status.allowedTransitions.map { "\($0.from.rawValue)>\($0.to.rawValue)" })
        #expect(listed == Self.allowed)
    }

    @Test func terminalStatuses_haveNoWayOut() {
        for status in Deployment.Status.allCases where status.isTerminal {
            #expect(!Deployment.Status.allowedTransitions.contains { $0.from == status })
        }
    }

    @Test func instanceStatus_followsTheEndOfADeployment() {
        #expect(InstanceStatus.after(.provision, endedWith: .completed) == .provisioned)
        #expect(InstanceStatus.after(.decommission, endedWith: .completed) == .decommissioned)
        #expect(InstanceStatus.after(.provision, endedWith: .failed) == .failed)
        #expect(InstanceStatus.after(.plan, endedWith: .completed) == nil)
        #expect(InstanceStatus.after(.plan, endedWith: .failed) == nil)
        #expect(InstanceStatus.after(.provision, endedWith: .aborted) == nil)
    }
}
