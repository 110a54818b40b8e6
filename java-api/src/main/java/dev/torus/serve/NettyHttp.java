package dev.torus.serve;

import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaderValues;
import io.netty.handler.codec.http.HttpObjectAggregator;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpServerCodec;
import io.netty.handler.codec.http.HttpServerKeepAliveHandler;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.TimeUnit;

/**
 * A Netty HTTP/1.1 server with keep-alive and a body limit (larger bodies get 413 from Netty's aggregator
 * before any handler runs). The handler must not block: it answers through {@link #respond} from any thread.
 * Owns its event loops; {@link #close()} stops them.
 */
final class NettyHttp implements AutoCloseable {
    /** Handles one complete request; the request is released after the call returns. */
    interface Handler {
        void handle(ChannelHandlerContext ctx, FullHttpRequest request);
    }

    private final EventLoopGroup boss;
    private final EventLoopGroup workers;
    private final Channel channel;

    private NettyHttp(EventLoopGroup boss, EventLoopGroup workers, Channel channel) {
        this.boss = boss;
        this.workers = workers;
        this.channel = channel;
    }

    static NettyHttp start(String host, int port, int maxBodyBytes, int ioThreads, Handler handler) {
        EventLoopGroup boss = new MultiThreadIoEventLoopGroup(1, NioIoHandler.newFactory());
        EventLoopGroup workers = new MultiThreadIoEventLoopGroup(ioThreads, NioIoHandler.newFactory());
        try {
            ServerBootstrap b = new ServerBootstrap().group(boss, workers).channel(NioServerSocketChannel.class)
                    .option(ChannelOption.SO_BACKLOG, 1024)
                    .childOption(ChannelOption.TCP_NODELAY, true)
                    .childHandler(new ChannelInitializer<SocketChannel>() {
                        @Override
                        protected void initChannel(SocketChannel ch) {
                            ch.pipeline().addLast(new HttpServerCodec(), new HttpServerKeepAliveHandler(),
                                    new HttpObjectAggregator(maxBodyBytes) {
                                        @Override
                                        protected void handleOversizedMessage(ChannelHandlerContext ctx,
                                                                              io.netty.handler.codec.http.HttpMessage m) {
                                            // answered in request order by the handler below (413, then close),
                                            // not at once: a pipelined request before it is still in progress
                                            ctx.fireChannelRead(new io.netty.handler.codec.http.DefaultFullHttpRequest(
                                                    HttpVersion.HTTP_1_1, io.netty.handler.codec.http.HttpMethod.POST,
                                                    OVERSIZED));
                                        }
                                    },
                                    new SimpleChannelInboundHandler<FullHttpRequest>() {
                                        @Override
                                        protected void channelRead0(ChannelHandlerContext ctx, FullHttpRequest req) {
                                            InOrder order = ctx.channel().attr(IN_ORDER).get();
                                            if (order.busy) {
                                                // a pipelined request: answered after the one before it
                                                if (order.waiting.size() >= MAX_PIPELINED) {
                                                    ctx.close();
                                                    return;
                                                }
                                                order.waiting.addLast(req.retain());
                                                return;
                                            }
                                            order.busy = true;
                                            dispatch(ctx, req, handler);
                                        }

                                        @Override
                                        public void handlerAdded(ChannelHandlerContext ctx) {
                                            ctx.channel().attr(IN_ORDER).set(new InOrder(handler));
                                        }

                                        @Override
                                        public void channelInactive(ChannelHandlerContext ctx) {
                                            InOrder order = ctx.channel().attr(IN_ORDER).get();
                                            while (order != null && !order.waiting.isEmpty()) {
                                                order.waiting.pollFirst().release();
                                            }
                                            ctx.fireChannelInactive();
                                        }

                                        @Override
                                        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
                                            ctx.close();
                                        }
                                    });
                        }
                    });
            InetSocketAddress address = new InetSocketAddress(host, port);
            if (address.isUnresolved()) {
                throw new IllegalArgumentException("cannot listen on " + host + ":" + port + ": unknown host '" + host + "'");
            }
            Channel ch = b.bind(address).syncUninterruptibly().channel();
            return new NettyHttp(boss, workers, ch);
        } catch (Exception e) {   // bind failures arrive as checked exceptions through syncUninterruptibly
            boss.shutdownGracefully(0, 1, TimeUnit.SECONDS);
            workers.shutdownGracefully(0, 1, TimeUnit.SECONDS);
            if (e instanceof IllegalArgumentException iae) {
                throw iae;
            }
            throw new IllegalArgumentException("cannot listen on " + host + ":" + port + ": "
                    + (e.getMessage() == null ? e.toString() : e.getMessage()), e);
        }
    }

    /** The stand-in the aggregator passes on for a body over the limit (no real request has this URI). */
    private static final String OVERSIZED = "\u0000oversized";

    /** Requests pipelined on one connection beyond this close it. */
    private static final int MAX_PIPELINED = 16;
    private static final io.netty.util.AttributeKey<InOrder> IN_ORDER = io.netty.util.AttributeKey.valueOf("torus-in-order");

    /**
     * One connection's requests in arrival order: HTTP/1.1 pipelining requires answers in request order, and
     * answers here come from other threads, so a connection has one request in progress and the rest wait.
     * Touched only on the channel's event loop.
     */
    private static final class InOrder {
        final Handler handler;
        final java.util.ArrayDeque<FullHttpRequest> waiting = new java.util.ArrayDeque<>();
        boolean busy;

        InOrder(Handler handler) {
            this.handler = handler;
        }
    }

    private static void dispatch(ChannelHandlerContext ctx, FullHttpRequest req, Handler handler) {
        if (OVERSIZED.equals(req.uri())) {
            respond(ctx, false, HttpResponseStatus.REQUEST_ENTITY_TOO_LARGE, "application/json",
                    bytes("{\"error\":\"the request body is over the size limit\"}"), null);
            return;
        }
        if (!req.decoderResult().isSuccess()) {
            respond(ctx, req, HttpResponseStatus.BAD_REQUEST, "text/plain", bytes("malformed HTTP request\n"));
            return;
        }
        try {
            handler.handle(ctx, req);
        } catch (RuntimeException e) {
            respond(ctx, req, HttpResponseStatus.INTERNAL_SERVER_ERROR, "text/plain",
                    bytes("internal error: " + e + "\n"));
        }
    }

    /** After an answer went out: the next pipelined request of the connection, if any. */
    private static void next(ChannelHandlerContext ctx) {
        InOrder order = ctx.channel().attr(IN_ORDER).get();
        if (order == null) {
            return;
        }
        FullHttpRequest req = order.waiting.pollFirst();
        if (req == null) {
            order.busy = false;
            return;
        }
        try {
            dispatch(ctx, req, order.handler);
        } finally {
            req.release();
        }
    }

    static byte[] bytes(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    /** Sends a complete response, keeping the connection open when the request asked for keep-alive. */
    static void respond(ChannelHandlerContext ctx, FullHttpRequest req, HttpResponseStatus status, String contentType,
                        byte[] body) {
        respond(ctx, HttpUtil.isKeepAlive(req), status, contentType, body, null);
    }

    static void respond(ChannelHandlerContext ctx, boolean keepAlive, HttpResponseStatus status, String contentType,
                        byte[] body, String retryAfterSeconds) {
        if (ctx.executor().isShuttingDown()) {
            return;     // the server is closing and the connection with it
        }
        ByteBuf buf = Unpooled.wrappedBuffer(body);
        FullHttpResponse res = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1, status, buf);
        res.headers().set(HttpHeaderNames.CONTENT_TYPE, contentType);
        res.headers().setInt(HttpHeaderNames.CONTENT_LENGTH, body.length);
        if (retryAfterSeconds != null) {
            res.headers().set(HttpHeaderNames.RETRY_AFTER, retryAfterSeconds);
        }
        if (keepAlive) {
            res.headers().set(HttpHeaderNames.CONNECTION, HttpHeaderValues.KEEP_ALIVE);
            ctx.writeAndFlush(res).addListener(f -> {
                if (ctx.executor().inEventLoop()) {
                    next(ctx);
                } else {
                    ctx.executor().execute(() -> next(ctx));
                }
            });
        } else {
            res.headers().set(HttpHeaderNames.CONNECTION, HttpHeaderValues.CLOSE);
            ctx.writeAndFlush(res).addListener(ChannelFutureListener.CLOSE);
        }
    }

    int port() {
        return ((InetSocketAddress) channel.localAddress()).getPort();
    }

    String host() {
        return ((InetSocketAddress) channel.localAddress()).getAddress().getHostAddress();
    }

    /** Stops accepting connections; those open keep being served until {@link #close()}. */
    void stopAccepting() {
        channel.close().awaitUninterruptibly(2, TimeUnit.SECONDS);
    }

    @Override
    public void close() {
        channel.close().awaitUninterruptibly(2, TimeUnit.SECONDS);
        boss.shutdownGracefully(0, 2, TimeUnit.SECONDS).awaitUninterruptibly(3, TimeUnit.SECONDS);
        workers.shutdownGracefully(0, 2, TimeUnit.SECONDS).awaitUninterruptibly(3, TimeUnit.SECONDS);
    }
}
