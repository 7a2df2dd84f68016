/// The prompt every built-in strategy shares, so that strategies differ only in how they
/// spend compute. Chosen on GSM8K train (see docs/results).
public enum Prompts {
    public static let system = "You are a careful maths tutor. Solve the problem step by step, "
        + "one short step per paragraph, then give the final answer on its own line as "
        + "\"The answer is N.\" where N is a number."

    /// The final-answer line the system prompt asks for; strategies stop or split on it.
    public static let answerMarker = "The answer is"
}
