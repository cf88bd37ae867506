import java.lang.reflect.Field;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import software.amazon.dynamodb.services.local.main.ServerRunner;
import software.amazon.dynamodb.services.local.server.DynamoDBProxyServer;

/**
 * DynamoDB Local's ServerRunner with the HTTP listener bound to one host (default 127.0.0.1):
 * DynamoDB Local has no bind-address option and listens on every interface. Same command-line
 * arguments as ServerRunner. Telemetry is never configured here (ServerRunner.main would set it
 * up unless -disableTelemetry is given), so nothing is sent anywhere.
 * Compiled once by the test harness (libs/testkit/src/dynamodb-local.ts) into .cache.
 */
public final class LoopbackServerRunner {
  private LoopbackServerRunner() {}

  public static void main(String[] args) throws Exception {
    String host = System.getProperty("cdp.bindHost", "127.0.0.1");
    DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(args);
    Field field = DynamoDBProxyServer.class.getDeclaredField("server");
    field.setAccessible(true);
    Server jetty = (Server) field.get(proxy);
    for (Connector connector : jetty.getConnectors()) {
      ((ServerConnector) connector).setHost(host);
    }
    // Like ServerRunner.main: start() prints a bind failure to stderr and stops the server, after
    // which no thread keeps the JVM alive.
    proxy.start();
    if (jetty.isStarted()) {
      System.out.println("DynamoDB Local listening on " + host + ":" + ((ServerConnector) jetty.getConnectors()[0]).getLocalPort());
    }
  }
}
