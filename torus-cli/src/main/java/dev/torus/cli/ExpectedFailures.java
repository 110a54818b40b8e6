package dev.torus.cli;

import picocli.CommandLine;

/**
 * How the Torus command-line tools report a failure the user can act on: a bad value
 * ({@link IllegalArgumentException}) or a runtime condition ({@link IllegalStateException}, an I/O failure, or a
 * {@link dev.torus.TorusException}: no GPU, a broken communicator, a refused store) prints one line, prefixed with the program's name, and exits with 2. Anything else is a bug in
 * Torus and keeps its stack trace.
 */
final class ExpectedFailures {
    private ExpectedFailures() {}

    static CommandLine.IExecutionExceptionHandler oneLine(String program) {
        return (e, cmd, parsed) -> {
            if (e instanceof IllegalArgumentException || e instanceof IllegalStateException
                    || e instanceof dev.torus.TorusException || e instanceof java.io.IOException
                    || e instanceof java.io.UncheckedIOException) {
                cmd.getErr().println(program + ": " + e.getMessage());
                return 2;
            }
            throw e;
        };
    }

    /** A value picocli cannot parse (a type error, a repeated option): one line and a pointer to --help, exit 2. */
    static CommandLine.IParameterExceptionHandler oneLineParse(String program) {
        return (e, args) -> {
            e.getCommandLine().getErr().println(program + ": " + e.getMessage() + " (see --help)");
            return 2;
        };
    }
}
