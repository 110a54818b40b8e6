package dev.torus.nn;

import dev.torus.Device;
import dev.torus.memory.Allocator;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * A block MLP for classification, as a flat list of layers that
 * {@link dev.torus.recompute.CheckpointedSequential} can run:
 * {@code blocks x [Linear(no bias) -> LayerNorm -> BiasGelu -> Dropout]} (Dropout
 * omitted when {@code dropout} is 0), then {@code Linear(width, classes)}.
 * The first block maps {@code inputs} to {@code width}; the others are
 * {@code width x width}. Parameters are initialised from {@code seed}; the block
 * weights use He initialisation (uniform in {@code +-sqrt(6 / fanIn)}) so that a
 * deep stack without residual connections still trains.
 *
 * <p>Owns its layers (and so their parameters); {@link #close()} frees them.
 */
public final class Mlp implements AutoCloseable {
    private final List<Layer> layers;
    private final int blocks;
    private final int layersPerBlock;
    private final boolean residual;

    public Mlp(int inputs, int width, int blocks, int classes, float dropout, Device device, Allocator allocator,
               long seed) {
        this(inputs, width, blocks, classes, dropout, false, device, allocator, seed);
    }

    /**
     * As above; with {@code residual}, every block whose input has the model's width (all but the first when
     * {@code inputs != width}) is a {@link Residual}: {@code x + block(x)}, one layer in {@link #layers()}.
     * Deep stacks (32 blocks) train with it; without it they barely learn.
     */
    public Mlp(int inputs, int width, int blocks, int classes, float dropout, boolean residual, Device device,
               Allocator allocator, long seed) {
        Checks.positive("inputs", inputs);
        Checks.positive("width", width);
        Checks.positive("blocks", blocks);
        Checks.positive("classes", classes);
        if (!(dropout >= 0f && dropout < 1f)) {
            throw new IllegalArgumentException("dropout must be in [0, 1), got " + dropout);
        }
        Checks.notNull("device", device);
        Checks.notNull("allocator", allocator);
        this.blocks = blocks;
        this.layersPerBlock = dropout > 0f ? 4 : 3;
        this.residual = residual;
        List<Layer> ls = new ArrayList<>();
        try {
            for (int b = 0; b < blocks; b++) {
                int fanIn = b == 0 ? inputs : width;
                List<Layer> block = new ArrayList<>(4);
                try {
                    block.add(new Linear(fanIn, width, false, device, allocator, seed * 1_000_003L + b,
                            Math.sqrt(6.0 / fanIn)));
                    block.add(new LayerNorm(width, 1e-5f, device, allocator));
                    block.add(new BiasGelu(width, device, allocator));
                    if (dropout > 0f) {
                        block.add(new Dropout(dropout));
                    }
                } catch (RuntimeException e) {
                    block.forEach(Layer::close);
                    throw e;
                }
                if (residual && fanIn == width) {
                    ls.add(new Residual(block));
                } else {
                    ls.addAll(block);
                }
            }
            ls.add(new Linear(width, classes, true, device, allocator, seed * 1_000_003L + blocks));
        } catch (RuntimeException e) {
            ls.forEach(Layer::close);
            throw e;
        }
        this.layers = Collections.unmodifiableList(ls);
    }

    /** The layers, in order (owned by this model). */
    public List<Layer> layers() {
        return layers;
    }

    public int blocks() {
        return blocks;
    }

    /** True when the blocks of the model's width are {@link Residual} blocks. */
    public boolean residual() {
        return residual;
    }

    /** Layers in one plain block: 4 with dropout, 3 without (a residual block is one {@link Residual} holding them). */
    public int layersPerBlock() {
        return layersPerBlock;
    }

    /** Every parameter, layer by layer. */
    public List<Parameter> parameters() {
        List<Parameter> ps = new ArrayList<>();
        for (Layer l : layers) {
            ps.addAll(l.parameters());
        }
        return ps;
    }

    /** Turns the dropout layers on (training) or off (evaluation). */
    public void setTraining(boolean training) {
        for (Layer l : layers) {
            if (l instanceof Dropout d) {
                d.setEnabled(training);
            } else if (l instanceof Residual r) {
                r.setTraining(training);
            }
        }
    }

    @Override
    public void close() {
        for (Layer l : layers) {
            l.close();
        }
    }
}
