import ConvergeCore
import ConvergeTestSupport
import Foundation
import Testing

@testable import ConvergeEngine

/// The redactor finds a secret in every encoding a provisioner is likely to print it in.
@Suite struct SecretRedactorTests {
    static let secret = SecretEncodings.secret

    @Test(arguments: SecretEncodings.encodings(of: secret))
    func everyEncoding_isRedacted(encoder: String, encoded: String) {
        let redactor = SecretRedactor([Self.secret])
        let text = "before \(encoded) after"
        let redacted = redactor.redact(text)
        #expect(!redacted.contains(encoded), "\(encoder): \(redacted)")
        #expect(redacted.contains(SecretRedactor.placeholder), "\(encoder)")
        #expect(redacted.hasPrefix("before ") && redacted.hasSuffix(" after"), "\(encoder): \(redacted)")
        // The same inside a JSON value, as outputs and plan results hold it: keys too.
        let value: Value = ["outputs": .object(["echo": .string(text), encoded: ["n": 1]])]
        #expect(
            redactor.redact(value)
                == ["outputs": .object(["echo": .string(redacted), redactor.redact(encoded): ["n": 1]])], "\(encoder)")
    }

    @Test func textWithoutTheSecret_isUnchanged_evenWhereItsCharactersAreEscaped() {
        let redactor = SecretRedactor([Self.secret, "password1"])
        for text in [
            "nothing here", #"p\"w\\d"#, "%70%22", "cGFzc3dvcmQ", Data("another value".utf8).base64EncodedString(),
            #"{"a": "\u20ac"}"#, #"p\\\"w\\\\d\\u20"#,
        ] {
            #expect(redactor.redact(text) == text)
        }
    }

    /// A value marked sensitive may carry a secret downstream on purpose: it is sealed whole, not redacted; a sealed
    /// one is left as it is (redacting its base64 could break it).
    @Test func sensitiveValues_areLeftWhole_andTheRestRedacted() {
        let redactor = SecretRedactor(["s3cr3t", "QUJD"])
        let outputs: Value = [
            "password": ["value": "s3cr3t", "sensitive": true], "sealed": ["$sealed": "xQUJDx"], "echo": "s3cr3t",
        ]
        #expect(
            redactor.redact(outputs) == [
                "password": ["value": "s3cr3t", "sensitive": true], "sealed": ["$sealed": "xQUJDx"],
                "echo": "[redacted]",
            ])
    }

    @Test func anOutcome_isRedactedInItsOutputsPlanResultAndError() {
        let redactor = SecretRedactor(["s3cr3t"])
        let base64 = Data("s3cr3t".utf8).base64EncodedString()
        #expect(
            redactor.redact(
                .completed(outputs: ["db": ["password": "s3cr3t", "b": .string(base64)]], planResult: ["x": "s3cr3t"]))
                == .completed(
                    outputs: ["db": ["password": "[redacted]", "b": "[redacted]"]], planResult: ["x": "[redacted]"]))
        #expect(redactor.redact(.failed("login with s%33cr3t refused")) == .failed("login with [redacted] refused"))
        #expect(redactor.redact(.accepted) == .accepted)
    }
}
