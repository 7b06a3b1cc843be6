import type { Node, TextNode } from '@figma/rest-api-spec';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { generateCode } from '../../../../src/workers/figma-mcp/design/codegen.js';
import { simplify, variantValues } from '../../../../src/workers/figma-mcp/design/simplify.js';
import { textDetails } from '../../../../src/workers/figma-mcp/design/text-runs.js';
import { textStyleCss } from '../../../../src/workers/figma-mcp/design/css-values.js';

const box = { x: 0, y: 0, width: 100, height: 20 };

function textNode(over: Partial<TextNode>): TextNode {
  return {
    id: '1:2',
    name: 'T',
    type: 'TEXT',
    absoluteBoundingBox: box,
    fills: [{ type: 'SOLID', blendMode: 'NORMAL', color: { r: 0, g: 0, b: 0, a: 1 } }],
    characters: 'abcdef',
    style: { fontFamily: 'Inter', fontSize: 16, fontWeight: 400, textDecoration: 'UNDERLINE' },
    characterStyleOverrides: [],
    styleOverrideTable: {},
    lineTypes: ['NONE'],
    lineIndentations: [0],
    ...over,
  } as TextNode;
}

describe('text runs', () => {
  it('merges neighbouring ids that style alike, keeps only differences and says when a run switches the base off', () => {
    const node = textNode({
      characterStyleOverrides: [0, 1, 2, 0, 3, 3],
      styleOverrideTable: {
        '1': { fontWeight: 700, fontFamily: 'Inter' },
        '2': { fontWeight: 700, fontSize: 16 },
        '3': { textDecoration: 'NONE' },
      },
    });
    const base = textStyleCss(node.style);
    expect(textDetails(node, base, '#000000').runs).toEqual([
      { start: 1, end: 3, style: { fontWeight: 700 } },
      { start: 4, end: 6, style: { textDecoration: 'none' } },
    ]);
  });

  it('ignores overrides that change nothing a reader sees and indexes past the text', () => {
    const node = textNode({
      characters: 'ab',
      characterStyleOverrides: [1, 1, 2, 2],
      styleOverrideTable: { '1': { fontFamily: 'Inter' }, '2': { fontWeight: 700 } },
    });
    expect(textDetails(node, textStyleCss(node.style), '#000000').runs).toEqual([]);
  });

  it('reads variant values from a variant name and refuses names that are not variants', () => {
    expect(variantValues('Size=Large, Tone = Dark')).toEqual({ Size: 'Large', Tone: 'Dark' });
    expect(variantValues('Button')).toBeUndefined();
    expect(variantValues('a=b=c')).toBeUndefined();
  });
});

/** JSX attributes of every element in generated TSX, by tag. */
function jsxAttributes(tsx: string): { tag: string; attrs: string[] }[] {
  const sf = ts.createSourceFile('x.tsx', tsx, ts.ScriptTarget.ES2020, true, ts.ScriptKind.TSX);
  const out: { tag: string; attrs: string[] }[] = [];
  const visit = (n: ts.Node) => {
    if (ts.isJsxOpeningElement(n) || ts.isJsxSelfClosingElement(n))
      out.push({
        tag: n.tagName.getText(sf),
        attrs: n.attributes.properties.map((p) => (p.name ? p.name.getText(sf) : '...')),
      });
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return out;
}

describe('generated code from a hostile design', () => {
  const evil = 'x" onError={() => fetch("//evil")} y="';
  const frame = {
    id: '1:1',
    name: `Root\u2028alert(1)`,
    type: 'FRAME',
    absoluteBoundingBox: { x: 0, y: 0, width: 300, height: 200 },
    fills: [],
    children: [
      { id: '1:3', name: evil, type: 'VECTOR', absoluteBoundingBox: box, fills: [] },
      textNode({
        id: '1:4',
        characters: '<script>alert(1)</script> click',
        style: { fontFamily: `Inter"/><script>x</script>`, fontSize: 16 },
        characterStyleOverrides: [...new Array<number>(27).fill(0), 1, 1, 1, 1, 1],
        styleOverrideTable: { '1': { hyperlink: { type: 'URL', url: 'javascript:alert(1)' } } },
      }),
    ],
  } as unknown as Node;

  it('keeps layer names, fonts, text and links from becoming attributes, tags or script', () => {
    const code = generateCode(simplify([frame]), { framework: 'both' });
    for (const el of jsxAttributes(code.react!))
      for (const a of el.attrs) expect(['className', 'data-figma-id', 'src', 'alt']).toContain(a);
    const diag = ts.transpileModule(code.react!, {
      reportDiagnostics: true,
      compilerOptions: { jsx: ts.JsxEmit.React },
    }).diagnostics;
    expect(diag).toEqual([]);
    expect(code.react!.split('\n')[0]).toContain('Root alert(1)');
    expect(code.html).not.toContain('<script>');
    expect(code.html).not.toContain('javascript:');
    expect(code.react).not.toContain('javascript:');
    expect(code.css).toContain("font-family: 'Interscriptxscript', sans-serif;");
  });
});

describe('paragraphs', () => {
  it('puts paragraph spacing between paragraph blocks, with no whitespace a pre-wrap element would show', () => {
    const node = textNode({
      characters: 'One\nTwo',
      style: { fontFamily: 'Inter', fontSize: 16, paragraphSpacing: 12, paragraphIndent: 8 },
      lineTypes: ['NONE', 'NONE'],
      lineIndentations: [0, 0],
    });
    const design = simplify([
      {
        id: '1:1',
        name: 'F',
        type: 'FRAME',
        absoluteBoundingBox: { x: 0, y: 0, width: 200, height: 100 },
        fills: [],
        children: [node],
      } as unknown as Node,
    ]);
    const code = generateCode(design, { framework: 'html' });
    expect(code.html).toContain(
      '<span class="fp" style="display: block">One</span><span class="fp" style="display: block">Two</span>',
    );
    expect(code.css).toMatch(/\.t-1-2 \.fp \+ \.fp[^{]*\{\s*margin-top: 12px;/);
    expect(code.css).toMatch(/\.t-1-2 \{[^}]*text-indent: 8px;/);
  });
});
