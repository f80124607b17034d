import ConvergeCore
import Foundation
import Testing

@Suite struct IdentifierTests {
    @Test(arguments: ["ecomm", "ecomm-production", "ecomm-production-db", "a1-2b", String(repeating: "x", count: 20)])
    func valid(identifier: String) {
        #expect(Identifier.problem(with: identifier) == nil)
    }

    @Test func invalid_saysWhy() {
        #expect(Identifier.problem(with: "") == "identifier must not be empty")
        #expect(
            Identifier.problem(with: "Prod")
                == #"invalid character "P": only lower-case letters, digits and dashes between segments in "Prod""#)
        #expect(Identifier.problem(with: "a--b") == #"empty segment in "a--b""#)
        #expect(
            Identifier.problem(with: "db_1")
                == #"invalid character "_": only lower-case letters, digits and dashes between segments in "db_1""#)
        #expect(
            Identifier.problem(with: String(repeating: "x", count: 21))
                == #"segment "xxxxxxxxxxxxxxxxxxxxx" is longer than 20 characters in "xxxxxxxxxxxxxxxxxxxxx""#)
        #expect(Identifier.problem(withSegment: "a-b") == #""a-b" must be a single segment without dashes"#)
    }

    @Test func deploymentIDs_areShortReadableAndTimeOrdered() {
        var ids: [String] = []
        for millis in stride(from: 1_700_000_000_000, to: 1_700_000_000_000 + 50_000, by: 997) {
            ids.append(DeploymentID.make(now: Date(timeIntervalSince1970: Double(millis) / 1000)))
        }
        #expect(ids == ids.sorted())
        #expect(ids.allSatisfy { $0.count == 17 && $0.hasPrefix("d") })
        #expect(ids.allSatisfy { Identifier.problem(with: $0) == nil })
        #expect(Set(ids).count == ids.count)
    }
}
