import ConvergeCore
import Foundation
import GRDB
import Testing

@testable import ConvergeStore

/// Instance secrets in SQLite: opaque sealed bytes by instance and name, audited by name only.
@Suite struct SecretStoreTests {
    let sealed: [UInt8] = Array("opaque-sealed-bytes-1".utf8)
    let resealed: [UInt8] = Array("opaque-sealed-bytes-2".utf8)

    @Test(arguments: StoreEngine.allCases)
    func setSecret_keepsTheSealedBytes_replacesThemOnASecondSet_andListsNamesSorted(_ engine: StoreEngine) async throws
    {
        let fixture = try await StoreFixture(engine)
        let store = fixture.store
        try await store.setSecret(instanceID: "shop-dev-db", name: "PASSWORD", sealed: sealed, actor: "dora")
        try await store.setSecret(instanceID: "shop-dev-db", name: "API_KEY", sealed: sealed, actor: "dora")
        try await store.setSecret(instanceID: "shop-dev-db", name: "PASSWORD", sealed: resealed, actor: "dora")

        #expect(try await store.secretNames(of: "shop-dev-db") == ["API_KEY", "PASSWORD"])
        #expect(try await store.secretNames(of: "shop-dev-app") == [])
        #expect(try await store.sealedSecrets(of: "shop-dev-db") == ["API_KEY": sealed, "PASSWORD": resealed])
        #expect(try await store.sealedSecrets(of: "shop-dev-app").isEmpty)
        #expect(
            try await store.secretNames(ofInstances: ["shop-dev-db", "shop-dev-app", "unknown"])
                == ["shop-dev-db": ["API_KEY", "PASSWORD"]])
        #expect(try await store.secretNames(ofInstances: []).isEmpty)
    }

    @Test(arguments: StoreEngine.allCases) func deleteSecret_removesOnlyThatName_andAMissingOneIsNotFound(
        _ engine: StoreEngine
    ) async throws {
        let fixture = try await StoreFixture(engine)
        let store = fixture.store
        try await store.setSecret(instanceID: "shop-dev-db", name: "PASSWORD", sealed: sealed, actor: "dora")
        try await store.setSecret(instanceID: "shop-dev-app", name: "PASSWORD", sealed: sealed, actor: "dora")
        try await store.deleteSecret(instanceID: "shop-dev-db", name: "PASSWORD", actor: "dora")
        #expect(try await store.secretNames(of: "shop-dev-db") == [])
        #expect(try await store.secretNames(of: "shop-dev-app") == ["PASSWORD"])
        let again = await convergeError {
            try await store.deleteSecret(instanceID: "shop-dev-db", name: "PASSWORD", actor: "dora")
        }
        #expect(again?.code == .notFound)
        #expect(again?.message == "instance shop-dev-db has no secret PASSWORD")
    }

    @Test(arguments: StoreEngine.allCases) func everyOperation_onAnUnknownInstance_isNotFound(_ engine: StoreEngine)
        async throws
    {
        let fixture = try await StoreFixture(engine)
        let store = fixture.store
        let set = await convergeError {
            try await store.setSecret(instanceID: "shop-dev-nope", name: "PASSWORD", sealed: sealed, actor: "dora")
        }
        #expect(set == ConvergeError(.notFound, "instance shop-dev-nope not found"))
        #expect(await convergeError { try await store.secretNames(of: "shop-dev-nope") }?.code == .notFound)
        let delete = await convergeError {
            try await store.deleteSecret(instanceID: "shop-dev-nope", name: "PASSWORD", actor: "dora")
        }
        #expect(delete?.code == .notFound)
    }

    @Test(arguments: StoreEngine.allCases) func theAuditLog_namesTheSecretOnly_neverItsBytes(_ engine: StoreEngine)
        async throws
    {
        let fixture = try await StoreFixture(engine)
        let store = fixture.store
        try await store.setSecret(instanceID: "shop-dev-db", name: "PASSWORD", sealed: sealed, actor: "dora")
        try await store.deleteSecret(instanceID: "shop-dev-db", name: "PASSWORD", actor: "erin")
        let entries = try await store.auditLog(AuditFilter(targetID: "shop-dev-db"), after: nil, limit: 50).items
        let secretEntries = entries.filter { $0.action.hasPrefix("secret.") }.reversed().map(\.self)
        #expect(secretEntries.map(\.action) == ["secret.set", "secret.delete"])
        #expect(secretEntries.map(\.actor) == ["dora", "erin"])
        #expect(secretEntries.map(\.targetKind) == ["Instance", "Instance"])
        #expect(secretEntries[0].before == nil && secretEntries[0].after == ["secret": "PASSWORD"])
        #expect(secretEntries[1].before == ["secret": "PASSWORD"] && secretEntries[1].after == nil)
    }

    @Test(arguments: StoreEngine.allCases) func theSchema_refusesABadName_andAnOversizedSeal_evenPastTheEngine(
        _ engine: StoreEngine
    ) async throws {
        let fixture = try await StoreFixture(engine)
        let store = fixture.store
        for name in ["", "1ABC", "A-B", "A B", String(repeating: "A", count: 65), "ÄPFEL"] {
            let error = await convergeError {
                try await store.setSecret(instanceID: "shop-dev-db", name: name, sealed: sealed, actor: "dora")
            }
            #expect(error?.code == .failedPrecondition, "\(name)")
        }
        try await store.setSecret(
            instanceID: "shop-dev-db", name: "_" + String(repeating: "a", count: 63), sealed: sealed, actor: "dora")
        let oversized = await convergeError {
            try await store.setSecret(
                instanceID: "shop-dev-db", name: "BIG", sealed: Array(repeating: 1, count: 65601), actor: "dora")
        }
        #expect(oversized?.code == .failedPrecondition)
    }
}
