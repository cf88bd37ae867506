// Run with Java's source-file mode: java -cp '<helm jars>/*' HelmCli.java <command> <chart> [values.yaml]
//   deps      vendor the chart's file:// dependencies into its charts/ folder
//   lint      helm lint --strict; prints messages, exit 1 on failure
//   template  helm template with the optional values file; prints the manifests
import com.marcnuri.helm.Helm;
import com.marcnuri.helm.LintResult;
import com.marcnuri.helm.TemplateCommand;
import java.nio.file.Path;
import java.nio.file.Paths;

public class HelmCli {
  public static void main(String[] args) throws Exception {
    Path chart = Paths.get(args[1]);
    switch (args[0]) {
      case "deps" -> System.out.print(new Helm(chart).dependency().update().call());
      case "lint" -> {
        LintResult result = new Helm(chart).lint().strict().call();
        System.out.println(String.join("\n", result.getMessages()));
        System.exit(result.isFailed() ? 1 : 0);
      }
      case "template" -> {
        TemplateCommand template = new Helm(chart).template().withName("cdp").withNamespace("cdp").withKubeVersion("1.30.0");
        if (args.length > 2) template = template.withValuesFile(Paths.get(args[2]));
        System.out.print(template.call());
      }
      default -> {
        System.err.println("usage: HelmCli deps|lint|template <chart> [values.yaml]");
        System.exit(2);
      }
    }
  }
}
