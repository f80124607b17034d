import ConvergeCore
import Foundation
import Testing

@testable import ConvergeEngine

/// Sealing instance secrets, and redacting their values from what is recorded.
@Suite struct SecretBoxTests {
    let key = SecretBox.newKey()

    @Test func aSealedValue_opensForItsInstanceAndName_underItsKey() throws {
        let box = try SecretBox(key: key)
        let sealed = try box.seal("hunter2 ✓", instanceID: "p-dev-a", name: "PASSWORD")
        #expect(try box.open(sealed, instanceID: "p-dev-a", name: "PASSWORD") == "hunter2 ✓")
        #expect(!String(decoding: sealed, as: UTF8.self).contains("hunter2"))
        // A fresh nonce every time: the same value never seals to the same bytes.
        #expect(try box.seal("hunter2 ✓", instanceID: "p-dev-a", name: "PASSWORD") != sealed)
    }

    @Test func aSensitiveOutput_sealsToTheSameText_opensUnderItsKeyOnly_andNeverAsASecret() throws {
        let box = try SecretBox(key: key)
        let value: Value = ["user": "app", "password": "hunter2 ✓"]
        let sealed = try box.sealOutput(value)
        #expect(try box.openOutput(sealed) == value)
        #expect(!sealed.contains("hunter2"))
        // The same value, the same text (an unchanged upstream output does not redeploy its downstream); another
        // value, another text.
        #expect(try box.sealOutput(value) == sealed)
        #expect(try box.sealOutput(["user": "app", "password": "hunter3 ✓"]) != sealed)
        #expect(throws: ConvergeError.self) { try SecretBox(key: SecretBox.newKey()).openOutput(sealed) }
        #expect(throws: ConvergeError.self) { try box.openOutput("not base64!") }
        let secret = try box.seal("hunter2", instanceID: "p-dev-a", name: "PASSWORD")
        #expect(throws: ConvergeError.self) { try box.openOutput(Data(secret).base64EncodedString()) }
    }

    @Test func aSealedValue_doesNotOpen_underAnotherInstanceNameOrKey_orTampered() throws {
        let box = try SecretBox(key: key)
        let sealed = try box.seal("hunter2", instanceID: "p-dev-a", name: "PASSWORD")
        let other = try SecretBox(key: SecretBox.newKey())
        var tampered = sealed
        tampered[tampered.count / 2] ^= 1
        let attempts: [(String, () throws -> String)] = [
            ("another instance", { try box.open(sealed, instanceID: "p-dev-b", name: "PASSWORD") }),
            ("another name", { try box.open(sealed, instanceID: "p-dev-a", name: "PASSWORD2") }),
            ("another key", { try other.open(sealed, instanceID: "p-dev-a", name: "PASSWORD") }),
            ("tampered", { try box.open(tampered, instanceID: "p-dev-a", name: "PASSWORD") }),
            ("truncated", { try box.open(Array(sealed.prefix(10)), instanceID: "p-dev-a", name: "PASSWORD") }),
        ]
        for (what, attempt) in attempts {
            #expect(throws: ConvergeError.self, "\(what)") { try attempt() }
        }
        do {
            _ = try other.open(sealed, instanceID: "p-dev-a", name: "PASSWORD")
        } catch let error as ConvergeError {
            #expect(error.code == .failedPrecondition)
            #expect(!error.message.contains("hunter2"))
        }
    }

    @Test func aKeyOfAnotherSize_isRefused() {
        #expect(throws: ConvergeError.self) { try SecretBox(key: Array(repeating: 1, count: 16)) }
        #expect(throws: ConvergeError.self) { try SecretBox(key: Array(repeating: 1, count: 33)) }
        #expect(SecretBox.newKey().count == 32)
        #expect(SecretBox.newKey() != SecretBox.newKey())
    }

    @Test func secretNames_areEnvironmentLikeNamesOfAtMost64() {
        for name in ["A", "_", "DB_PASSWORD", "apiKey2", "_" + String(repeating: "x", count: 63)] {
            #expect(throws: Never.self, "\(name)") { try InstanceSecrets.checkName(name) }
        }
        for name in ["", "2FA", "DB-PASSWORD", "DB PASSWORD", "DB.PASSWORD", "É", String(repeating: "x", count: 65)] {
            #expect(throws: ConvergeError.self, "\(name)") { try InstanceSecrets.checkName(name) }
        }
    }

    @Test func theRedactor_replacesEveryValue_longestFirst_inTextValuesAndEvents() {
        let redactor = SecretRedactor(["abc", "abcdef", "", "s3cr3t"])
        #expect(redactor.redact("x abcdef y abc z s3cr3ts3cr3t") == "x [redacted] y [redacted] z [redacted][redacted]")
        #expect(redactor.redact("nothing here") == "nothing here")
        #expect(redactor.redact("é abc é") == "é [redacted] é")
        let data: Value = ["password": "s3cr3t", "abc": ["list", "with abc"], "n": 3]
        #expect(
            redactor.redact(data) == ["password": "[redacted]", "[redacted]": ["list", "with [redacted]"], "n": 3])
        let event = DeploymentEventDraft(kind: .log, message: "echo s3cr3t", data: ["line": "s3cr3t"])
        #expect(
            redactor.redact(event)
                == DeploymentEventDraft(kind: .log, message: "echo [redacted]", data: ["line": "[redacted]"]))
        #expect(SecretRedactor([]).redact("abc") == "abc")
        #expect(SecretRedactor([""]).isEmpty)
        #expect(SecretRedactor.everything.redact("anything") == "[redacted]")
        #expect(SecretRedactor.everything.redact("") == "")
    }
}
