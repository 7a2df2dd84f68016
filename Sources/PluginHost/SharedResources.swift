import Engine
import Foundation

/// What solves share beyond the policy model, turned on by the administrator's plugin
/// settings through sd_host.enable_hidden_states and load_reward_model: only from a
/// plugin's configure(), never from a request.
public final class SharedResources: @unchecked Sendable {
    public let policy: Engine
    /// Loads a reward model by catalog name or path; the daemon resolves names and picks
    /// the engine options.
    private let loadModel: (String) throws -> Engine
    /// Called after a resource changed (the daemon refreshes the model facts plugins read).
    private let changed: () -> Void
    private let lock = NSLock()
    private var reward: (name: String, engine: Engine)?
    /// Held while a reward model loads (seconds), so that readers of `rewardEngine` never
    /// wait for it and two loads never run at once.
    private let loading = NSLock()

    public init(policy: Engine, loadModel: @escaping (String) throws -> Engine, changed: @escaping () -> Void) {
        self.policy = policy
        self.loadModel = loadModel
        self.changed = changed
    }

    /// The resident reward model, if a plugin's settings loaded one.
    public var rewardEngine: Engine? { lock.withLock { reward?.engine } }

    func enableHiddenStates() {
        guard !policy.hiddenStates else { return }
        policy.enableHiddenStates()
        changed()
    }

    enum RewardModelError: Error, CustomStringConvertible {
        case another(resident: String, asked: String)
        case load(String, Error)

        var description: String {
            switch self {
            case .another(let resident, let asked):
                return "reward model \(asked): \(resident) is resident, and one reward model is kept at a time"
            case .load(let name, let error): return "reward model \(name): \(error)"
            }
        }
    }

    /// Loads `name` as the reward model, unless it already is.
    func loadRewardModel(_ name: String) throws {
        try loading.withLock {
            if let resident = lock.withLock({ reward?.name }) {
                guard resident == name else { throw RewardModelError.another(resident: resident, asked: name) }
                return
            }
            let engine: Engine
            do {
                engine = try loadModel(name)
            } catch {
                throw RewardModelError.load(name, error)
            }
            lock.withLock { reward = (name, engine) }
            changed()
        }
    }

    /// The thread running a plugin's configure(): host calls that ask for resources are
    /// refused on every other thread.
    static let configuringKey = "strategyd.configuring"

    static var isConfiguring: Bool { Thread.current.threadDictionary[configuringKey] != nil }

    static func configuring<T>(_ plugin: String, _ body: () throws -> T) rethrows -> T {
        Thread.current.threadDictionary[configuringKey] = plugin
        defer { Thread.current.threadDictionary.removeObject(forKey: configuringKey) }
        return try body()
    }
}
