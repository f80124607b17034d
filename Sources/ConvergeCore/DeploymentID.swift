import Foundation

/// Short, readable, time-ordered deployment ids: `d` + 10 base-32 characters of Unix milliseconds + 6 random.
///
/// Ids sort by creation time across processes but are only for people; queue order comes from the
/// database's creation sequence.
public enum DeploymentID {
    private static let alphabet = Array("0123456789abcdefghjkmnpqrstvwxyz")

    /// A new id for a deployment created at `now`.
    public static func make(now: Date, using generator: inout some RandomNumberGenerator) -> String {
        var millis = UInt64(max(0, now.timeIntervalSince1970 * 1000))
        var time: [Character] = []
        for _ in 0..<10 {
            time.append(alphabet[Int(millis & 31)])
            millis >>= 5
        }
        let random = (0..<6).map { _ in alphabet[Int.random(in: 0..<32, using: &generator)] }
        return "d" + String(time.reversed()) + String(random)
    }

    /// A new id with the system's random number generator.
    public static func make(now: Date) -> String {
        var generator = SystemRandomNumberGenerator()
        return make(now: now, using: &generator)
    }
}
