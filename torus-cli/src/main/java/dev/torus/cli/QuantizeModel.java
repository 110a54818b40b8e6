package dev.torus.cli;

import dev.torus.serve.MlpModelFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Parameters;

/**
 * {@code ./torus quantize-model IN OUT}: writes the int8 weight-only copy of an fp32 torus-mlp safetensors
 * file: every linear weight as per-output-channel symmetric int8 (Torus's quantizer) plus its fp32 scales;
 * norms and biases stay fp32.
 */
@Command(name = "torus quantize-model", mixinStandardHelpOptions = true, version = "torus quantize-model 0.1.0",
        description = "Writes per-channel symmetric int8 weights with their scales (safetensors) from an fp32 "
                + "torus-mlp model file.")
public final class QuantizeModel implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "IN", description = "fp32 model file (safetensors, torus-mlp)")
    Path in;
    @Parameters(index = "1", paramLabel = "OUT", description = "int8 model file to write")
    Path out;

    public static void main(String[] args) {
        System.exit(commandLine().execute(args));
    }

    /** The configured command line: an expected failure prints one line and exits with 2. */
    public static CommandLine commandLine() {
        CommandLine cl = new CommandLine(new QuantizeModel());
        cl.setExecutionExceptionHandler(ExpectedFailures.oneLine("torus quantize-model"));
        cl.setParameterExceptionHandler(ExpectedFailures.oneLineParse("torus quantize-model"));
        return cl;
    }

    @Override
    public Integer call() throws Exception {
        if (!Files.isRegularFile(in)) {
            throw new IllegalArgumentException("IN: no such file: " + in);
        }
        if (in.toAbsolutePath().normalize().equals(out.toAbsolutePath().normalize())) {
            throw new IllegalArgumentException("OUT must differ from IN, got " + out);
        }
        MlpModelFile.quantize(in, out);
        long a = Files.size(in);
        long b = Files.size(out);
        System.out.printf("torus quantize-model: %s (%d bytes) -> %s (%d bytes, %.3fx)%n", in, a, out, b, (double) b / a);
        return 0;
    }
}
