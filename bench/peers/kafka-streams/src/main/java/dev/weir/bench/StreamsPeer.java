package dev.weir.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;

/**
 * The Kafka Streams peer of weir's real-broker benchmark: reads JSON orders from
 * one topic and writes the high-value filter ({@code total_amount > 1000}, records
 * unchanged) or the enrich-order map ({@code amount_bucket = floor(total_amount /
 * 100)}, {@code tax_amount = total_amount * 0.2}, nulls for a null amount) to
 * another, parsing every record with Jackson as a Streams user would.
 *
 * <p>Arguments: {@code --bootstrap --input --output --workload filter|map
 * --guarantee at_least_once|exactly_once_v2 --application-id --commit-interval-ms
 * --threads --state-dir}. It prints {@code running} once the instance is RUNNING
 * and {@code first <epoch ms>} when the first record arrives, runs until its
 * standard input closes, then closes the streams and prints {@code closed}.
 */
public final class StreamsPeer {
    private static final ObjectMapper MAPPER = new ObjectMapper();
    private static final double THRESHOLD = 1000.0;
    private static final double TAX_RATE = 0.2;

    private StreamsPeer() {}

    public static void main(String[] argv) throws Exception {
        Map<String, String> args = parse(argv);
        String workload = args.get("workload");
        Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, args.get("application-id"));
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, args.get("bootstrap"));
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, args.get("guarantee"));
        props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, args.get("commit-interval-ms"));
        props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, args.get("threads"));
        props.put(StreamsConfig.STATE_DIR_CONFIG, args.get("state-dir"));
        props.put(StreamsConfig.consumerPrefix("auto.offset.reset"), "earliest");

        StreamsBuilder builder = new StreamsBuilder();
        AtomicBoolean first = new AtomicBoolean();
        KStream<byte[], byte[]> orders = builder
                .stream(args.get("input"), Consumed.with(Serdes.ByteArray(), Serdes.ByteArray()))
                .peek((key, value) -> {
                    if (!first.get() && first.compareAndSet(false, true)) {
                        say("first " + System.currentTimeMillis());
                    }
                });
        KStream<byte[], byte[]> out = switch (workload) {
            case "filter" -> orders.filter((key, value) -> highValue(value));
            case "map" -> orders.mapValues(StreamsPeer::enrich);
            default -> throw new IllegalArgumentException("--workload must be filter or map, not " + workload);
        };
        out.to(args.get("output"), Produced.with(Serdes.ByteArray(), Serdes.ByteArray()));

        KafkaStreams streams = new KafkaStreams(builder.build(), props);
        streams.setStateListener((now, before) -> {
            if (now == KafkaStreams.State.RUNNING) {
                say("running");
            } else if (now == KafkaStreams.State.ERROR) {
                say("error");
            }
        });
        streams.setUncaughtExceptionHandler(error -> {
            System.err.println("kafka-streams peer: " + error);
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        streams.start();
        InputStream stdin = System.in;
        while (stdin.read() >= 0) {
            // Runs until the benchmark closes our standard input (or dies).
        }
        boolean closed = streams.close(Duration.ofSeconds(30));
        say("closed");
        System.exit(closed ? 0 : 1);
    }

    /** {@code total_amount > 1000}; a missing or null amount drops the order. */
    static boolean highValue(byte[] value) {
        JsonNode amount = read(value).get("total_amount");
        return amount != null && amount.isNumber() && amount.doubleValue() > THRESHOLD;
    }

    /** Appends {@code amount_bucket} and {@code tax_amount} (nulls for a null amount). */
    static byte[] enrich(byte[] value) {
        ObjectNode order = (ObjectNode) read(value);
        JsonNode amount = order.get("total_amount");
        if (amount != null && amount.isNumber()) {
            double total = amount.doubleValue();
            order.put("amount_bucket", (long) Math.floor(total / 100.0));
            order.put("tax_amount", total * TAX_RATE);
        } else {
            order.putNull("amount_bucket");
            order.putNull("tax_amount");
        }
        try {
            return MAPPER.writeValueAsBytes(order);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static JsonNode read(byte[] value) {
        try {
            return MAPPER.readTree(value);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static synchronized void say(String line) {
        System.out.println(line);
        System.out.flush();
    }

    private static Map<String, String> parse(String[] argv) {
        Map<String, String> args = new HashMap<>();
        for (int i = 0; i + 1 < argv.length; i += 2) {
            if (!argv[i].startsWith("--")) {
                throw new IllegalArgumentException("expected --name value, got " + argv[i]);
            }
            args.put(argv[i].substring(2), argv[i + 1]);
        }
        for (String required : new String[] {"bootstrap", "input", "output", "workload", "guarantee",
                "application-id", "commit-interval-ms", "threads", "state-dir"}) {
            if (!args.containsKey(required)) {
                throw new IllegalArgumentException("missing --" + required);
            }
        }
        return args;
    }
}
