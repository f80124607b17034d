import ConvergeCore
import ConvergeStore

extension Store {
    /// The deployments of instance `id`, newest first: the first page, which is all a test makes.
    public func history(_ id: String) async throws -> [Deployment] {
        try await history(of: id, after: nil, limit: 100).items
    }

    /// Whether the newest deployment of each of `ids` is COMPLETED.
    public func completed(_ ids: [String]) async throws -> Bool {
        for id in ids where try await history(id).first?.status != .completed { return false }
        return true
    }
}
