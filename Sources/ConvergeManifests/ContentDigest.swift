import Crypto

/// The SHA-256 of a file's content, to tell whether a file whose identity changed still says the same.
struct ContentDigest: Hashable, Sendable {
    private let bytes: [UInt8]

    init(_ text: String) {
        bytes = Array(SHA256.hash(data: Array(text.utf8)))
    }
}
