//! TQL, ThreatConnect's query language (seed 000), for executions, step runs and log
//! lines: parsed to an [`Expr`], and checked against a [`Schema`] of fields into a
//! [`Condition`]: typed, with `NOW()` resolved, and in no database's dialect. A store
//! renders it (`store::sqlite` to parameterised SQL); the same query also [`matches`]
//! an event in memory.
//!
//! ```text
//! query      := or
//! or         := and ( OR and )*
//! and        := unary ( AND unary )*
//! unary      := NOT unary | '(' query ')' | condition
//! condition  := field ( op value | [NOT] IN ( '(' value, … ')' | value ) | IS [NOT] NULL | ISNULL )
//! op         := = == EQ EQUALS | != NE | < LT | <= LEQ | > GT | >= GEQ
//!             | [NOT] LIKE | [NOT] CONTAINS | [NOT] STARTSWITH | [NOT] ENDSWITH
//! value      := "string" | 'string' | number | true | false | NOW() [± N unit] | TODAY() [± N unit]
//! ```
//!
//! Keywords, operators and field names are case-insensitive; AND binds tighter than OR,
//! as in SQL. Relative dates may be bare or quoted, as in the seed's
//! `completedTime > "NOW() - 1 HOUR"`; units are SECOND(S), MINUTE(S), HOUR(S), DAY(S),
//! WEEK(S), and the calendar's MONTH(S) and YEAR(S), in any case. Absolute dates are
//! `"2023-12-31"`, `"2023-12-31 13:45:00"` or RFC 3339, in UTC. A word a field never
//! holds (`status = "NoSuchStatus"`) is a query like any other, which matches nothing.

use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// Both hold.
    And(Box<Expr>, Box<Expr>),
    /// Either holds.
    Or(Box<Expr>, Box<Expr>),
    /// It does not hold.
    Not(Box<Expr>),
    /// `field op value`.
    Compare {
        /// The field, as written.
        field: String,
        /// The operator.
        op: Op,
        /// The value.
        value: Literal,
    },
    /// `field [NOT] IN (values)`.
    In {
        /// The field, as written.
        field: String,
        /// The values.
        values: Vec<Literal>,
        /// `NOT IN`.
        negated: bool,
    },
    /// `field IS [NOT] NULL`.
    IsNull {
        /// The field, as written.
        field: String,
        /// `IS NOT NULL`.
        negated: bool,
    },
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `LIKE`, `%` matching any text.
    Like,
    /// `NOT LIKE`
    NotLike,
    /// `CONTAINS`
    Contains,
    /// `NOT CONTAINS`
    NotContains,
    /// `STARTSWITH`
    StartsWith,
    /// `NOT STARTSWITH`
    NotStartsWith,
    /// `ENDSWITH`
    EndsWith,
    /// `NOT ENDSWITH`
    NotEndsWith,
}

impl Op {
    fn text(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Like => "LIKE",
            Op::NotLike => "NOT LIKE",
            Op::Contains => "CONTAINS",
            Op::NotContains => "NOT CONTAINS",
            Op::StartsWith => "STARTSWITH",
            Op::NotStartsWith => "NOT STARTSWITH",
            Op::EndsWith => "ENDSWITH",
            Op::NotEndsWith => "NOT ENDSWITH",
        }
    }

    fn is_text_match(self) -> bool {
        self.kind().is_err()
    }

    /// The comparison it is, or else the text match: the pattern it builds from the
    /// query's text, and whether it is negated.
    fn kind(self) -> Result<Comparison, TextMatch> {
        match self {
            Op::Eq => Ok(Comparison::Eq),
            Op::Ne => Ok(Comparison::Ne),
            Op::Lt => Ok(Comparison::Lt),
            Op::Le => Ok(Comparison::Le),
            Op::Gt => Ok(Comparison::Gt),
            Op::Ge => Ok(Comparison::Ge),
            Op::Like => Err((Pattern::Like, false)),
            Op::NotLike => Err((Pattern::Like, true)),
            Op::Contains => Err((Pattern::Contains, false)),
            Op::NotContains => Err((Pattern::Contains, true)),
            Op::StartsWith => Err((Pattern::StartsWith, false)),
            Op::NotStartsWith => Err((Pattern::StartsWith, true)),
            Op::EndsWith => Err((Pattern::EndsWith, false)),
            Op::NotEndsWith => Err((Pattern::EndsWith, true)),
        }
    }
}

/// A text operator: the pattern it makes of the query's text, and whether it is negated.
type TextMatch = (fn(String) -> Pattern, bool);

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A quoted string.
    Text(String),
    /// A number, as written.
    Number(String),
    /// `true` or `false`.
    Bool(bool),
    /// `NOW()` or `TODAY()` (midnight UTC) plus `months` (calendar months: MONTHS and
    /// YEARS) and `seconds` (the other units); one of the two is 0.
    Relative {
        /// From midnight today rather than now.
        today: bool,
        /// The offset in calendar months.
        months: i32,
        /// The offset, in seconds.
        seconds: i64,
    },
}

/// The most calendar months a relative date may move (a thousand years), so that adding
/// them cannot overflow a date.
const MAX_MONTHS: u32 = 12_000;

/// The unit a relative date's offset is written in, largest first.
const UNITS: [(&str, i64); 5] = [
    ("WEEK", 604_800),
    ("DAY", 86_400),
    ("HOUR", 3_600),
    ("MINUTE", 60),
    ("SECOND", 1),
];

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Text(text) => {
                f.write_str("\"")?;
                for c in text.chars() {
                    if matches!(c, '"' | '\\') {
                        f.write_str("\\")?;
                    }
                    write!(f, "{c}")?;
                }
                f.write_str("\"")
            }
            Literal::Number(n) => f.write_str(n),
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Relative {
                today,
                months,
                seconds,
            } => {
                f.write_str(if *today { "TODAY()" } else { "NOW()" })?;
                if *months != 0 {
                    let sign = if *months < 0 { '-' } else { '+' };
                    let magnitude = months.unsigned_abs();
                    if magnitude % 12 == 0 {
                        write!(f, " {sign} {} YEARS", magnitude / 12)?;
                    } else {
                        write!(f, " {sign} {magnitude} MONTHS")?;
                    }
                } else if *seconds != 0 {
                    let sign = if *seconds < 0 { '-' } else { '+' };
                    let magnitude = seconds.unsigned_abs();
                    let (unit, size) = UNITS
                        .iter()
                        .find(|(_, size)| magnitude % size.unsigned_abs() == 0)
                        .map_or(("SECOND", 1), |(u, s)| (*u, s.unsigned_abs()));
                    // Every magnitude is a multiple of a second.
                    write!(f, " {sign} {} {unit}S", magnitude / size)?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for Expr {
    /// The canonical text of the query: parsing it gives the same `Expr` back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::And(a, b) => write!(f, "({a} AND {b})"),
            Expr::Or(a, b) => write!(f, "({a} OR {b})"),
            Expr::Not(e) => write!(f, "NOT {e}"),
            Expr::Compare { field, op, value } => write!(f, "{field} {} {value}", op.text()),
            Expr::In {
                field,
                values,
                negated,
            } => {
                let values: Vec<String> = values.iter().map(ToString::to_string).collect();
                let not = if *negated { "NOT " } else { "" };
                write!(f, "{field} {not}IN ({})", values.join(", "))
            }
            Expr::IsNull { field, negated } => {
                write!(f, "{field} IS {}NULL", if *negated { "NOT " } else { "" })
            }
        }
    }
}

/// A query that does not parse or does not fit its fields: where, and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at position {position}: {message}")]
pub struct Error {
    /// Where, in characters from 1.
    pub position: usize,
    /// What was expected, and what was found.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Text(String),
    Number(String),
    Symbol(&'static str),
    LParen,
    RParen,
    Comma,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Word(w) => write!(f, "`{w}`"),
            Token::Text(t) => write!(f, "the string {}", Literal::Text(t.clone())),
            Token::Number(n) => write!(f, "the number `{n}`"),
            Token::Symbol(s) => write!(f, "`{s}`"),
            Token::LParen => f.write_str("`(`"),
            Token::RParen => f.write_str("`)`"),
            Token::Comma => f.write_str("`,`"),
        }
    }
}

/// Split `text` into tokens, each with its position (characters from 1).
fn lex(text: &str) -> Result<Vec<(usize, Token)>, Error> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let position = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let token = match c {
            '(' => {
                i += 1;
                Token::LParen
            }
            ')' => {
                i += 1;
                Token::RParen
            }
            ',' => {
                i += 1;
                Token::Comma
            }
            '"' | '\'' => {
                let mut value = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(Error {
                                position,
                                message: format!("the string opened here has no closing {c}"),
                            });
                        }
                        Some('\\') if i + 1 < chars.len() => {
                            value.push(chars[i + 1]);
                            i += 2;
                        }
                        Some(&q) if q == c => {
                            i += 1;
                            break;
                        }
                        Some(&other) => {
                            value.push(other);
                            i += 1;
                        }
                    }
                }
                Token::Text(value)
            }
            '=' | '!' | '<' | '>' => {
                let next = chars.get(i + 1).copied();
                let (symbol, width) = match (c, next) {
                    ('=', Some('=')) | ('=', _) => ("=", if next == Some('=') { 2 } else { 1 }),
                    ('!', Some('=')) => ("!=", 2),
                    ('<', Some('=')) => ("<=", 2),
                    ('<', Some('>')) => ("!=", 2),
                    ('>', Some('=')) => (">=", 2),
                    ('<', _) => ("<", 1),
                    ('>', _) => (">", 1),
                    _ => {
                        return Err(Error {
                            position,
                            message: "expected `!=`, found `!`".to_owned(),
                        });
                    }
                };
                i += width;
                Token::Symbol(symbol)
            }
            '+' => {
                i += 1;
                Token::Symbol("+")
            }
            '-' if !chars.get(i + 1).is_some_and(char::is_ascii_digit) => {
                i += 1;
                Token::Symbol("-")
            }
            c if c.is_ascii_digit() || c == '-' || c == '.' => {
                let start = i;
                i += 1;
                while chars
                    .get(i)
                    .is_some_and(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E'))
                {
                    i += 1;
                }
                let number: String = chars[start..i].iter().collect();
                if number.parse::<f64>().is_err() {
                    return Err(Error {
                        position,
                        message: format!("`{number}` is not a number"),
                    });
                }
                Token::Number(number)
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while chars
                    .get(i)
                    .is_some_and(|c| c.is_alphanumeric() || matches!(c, '_' | '.'))
                {
                    i += 1;
                }
                Token::Word(chars[start..i].iter().collect())
            }
            other => {
                return Err(Error {
                    position,
                    message: format!("unexpected character `{other}`"),
                });
            }
        };
        tokens.push((position, token));
    }
    Ok(tokens)
}

/// How deep `NOT` and parentheses may nest: the parser, the checker, a store's renderer
/// and its database all recurse once per level, and a client must not be able to exhaust a stack.
pub const MAX_NESTING: usize = 32;
/// Conditions in one query: each becomes a level of a database's expression (SQLite
/// refuses expressions deeper than 1,000).
pub const MAX_CONDITIONS: usize = 256;
/// Values in one `IN` list.
pub const MAX_IN_VALUES: usize = 1_000;
/// Values in one query: each is a parameter of a database's statement (SQLite takes at
/// most 32,766), and a store adds a few per condition.
pub const MAX_VALUES: usize = 10_000;
/// Characters in one string value (SQLite refuses long `LIKE` patterns).
pub const MAX_TEXT: usize = 4_096;

struct Parser {
    tokens: Vec<(usize, Token)>,
    next: usize,
    end: usize,
    depth: usize,
    conditions: usize,
    values: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.next).map(|(_, t)| t)
    }

    fn position(&self) -> usize {
        self.tokens.get(self.next).map_or(self.end, |(p, _)| *p)
    }

    fn error<T>(&self, expected: &str) -> Result<T, Error> {
        let found = self
            .peek()
            .map_or_else(|| "the end of the query".to_owned(), ToString::to_string);
        Err(Error {
            position: self.position(),
            message: format!("expected {expected}, found {found}"),
        })
    }

    /// Whether the next token is the keyword `word`; consumes it if so.
    fn keyword(&mut self, word: &str) -> bool {
        let matched = matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word));
        if matched {
            self.next += 1;
        }
        matched
    }

    fn take(&mut self, token: &Token) -> bool {
        let matched = self.peek() == Some(token);
        if matched {
            self.next += 1;
        }
        matched
    }

    fn or(&mut self) -> Result<Expr, Error> {
        let mut left = self.and()?;
        while self.keyword("OR") {
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, Error> {
        let mut left = self.unary()?;
        while self.keyword("AND") {
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, Error> {
        let position = self.position();
        let nested = |parser: &mut Self| -> Result<(), Error> {
            parser.depth += 1;
            if parser.depth > MAX_NESTING {
                return Err(Error {
                    position,
                    message: format!(
                        "the query nests `NOT` and `(` deeper than {MAX_NESTING} levels"
                    ),
                });
            }
            Ok(())
        };
        if self.keyword("NOT") {
            nested(self)?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        if self.take(&Token::LParen) {
            nested(self)?;
            let inner = self.or()?;
            if !self.take(&Token::RParen) {
                return self.error("`)` or AND or OR");
            }
            self.depth -= 1;
            return Ok(inner);
        }
        self.conditions += 1;
        if self.conditions > MAX_CONDITIONS {
            return Err(Error {
                position,
                message: format!("the query has more than {MAX_CONDITIONS} conditions"),
            });
        }
        self.condition()
    }

    fn condition(&mut self) -> Result<Expr, Error> {
        let Some(Token::Word(field)) = self.peek().cloned() else {
            return self.error("a field name, `NOT` or `(`");
        };
        self.next += 1;
        if self.keyword("ISNULL") {
            return Ok(Expr::IsNull {
                field,
                negated: false,
            });
        }
        if self.keyword("IS") {
            let negated = self.keyword("NOT");
            if !self.keyword("NULL") {
                return self.error("`NULL` after `IS`");
            }
            return Ok(Expr::IsNull { field, negated });
        }
        let negated = self.keyword("NOT");
        if self.keyword("IN") {
            // `IN "Failed"`, a bare value, is a list of one.
            if !self.take(&Token::LParen) {
                return Ok(Expr::In {
                    field,
                    values: vec![self.value()?],
                    negated,
                });
            }
            let mut values = vec![self.value()?];
            while self.take(&Token::Comma) {
                if values.len() == MAX_IN_VALUES {
                    return self.error(&format!(
                        "`)`: an `IN` list holds at most {MAX_IN_VALUES} values"
                    ));
                }
                values.push(self.value()?);
            }
            if !self.take(&Token::RParen) {
                return self.error("`,` or `)` in the `IN` list");
            }
            return Ok(Expr::In {
                field,
                values,
                negated,
            });
        }
        let op = match (self.peek(), negated) {
            (Some(Token::Symbol(s)), false) => match *s {
                "=" => Op::Eq,
                "!=" => Op::Ne,
                "<" => Op::Lt,
                "<=" => Op::Le,
                ">" => Op::Gt,
                ">=" => Op::Ge,
                _ => return self.error("an operator"),
            },
            (Some(Token::Word(w)), _) => {
                let word = w.to_ascii_uppercase();
                match (word.as_str(), negated) {
                    ("EQ" | "EQUALS", false) => Op::Eq,
                    ("NE", false) => Op::Ne,
                    ("LT", false) => Op::Lt,
                    ("LEQ" | "LE", false) => Op::Le,
                    ("GT", false) => Op::Gt,
                    ("GEQ" | "GE", false) => Op::Ge,
                    ("LIKE", false) => Op::Like,
                    ("LIKE", true) => Op::NotLike,
                    ("CONTAINS", false) => Op::Contains,
                    ("CONTAINS", true) => Op::NotContains,
                    ("STARTSWITH", false) => Op::StartsWith,
                    ("STARTSWITH", true) => Op::NotStartsWith,
                    ("ENDSWITH", false) => Op::EndsWith,
                    ("ENDSWITH", true) => Op::NotEndsWith,
                    _ if negated => {
                        return self
                            .error("IN, LIKE, CONTAINS, STARTSWITH or ENDSWITH after `NOT`");
                    }
                    _ => return self.error(OPERATORS),
                }
            }
            _ if negated => {
                return self.error("IN, LIKE, CONTAINS, STARTSWITH or ENDSWITH after `NOT`");
            }
            _ => return self.error(OPERATORS),
        };
        self.next += 1;
        let value = self.value()?;
        Ok(Expr::Compare { field, op, value })
    }

    fn value(&mut self) -> Result<Literal, Error> {
        self.values += 1;
        if self.values > MAX_VALUES {
            return self.error(&format!(
                "the end of the query: a query holds at most {MAX_VALUES} values in all"
            ));
        }
        let position = self.position();
        let literal = match self.peek().cloned() {
            Some(Token::Text(text)) => {
                if text.chars().count() > MAX_TEXT {
                    return Err(Error {
                        position,
                        message: format!("a string longer than {MAX_TEXT} characters"),
                    });
                }
                self.next += 1;
                // A relative date may be quoted: `"NOW() - 1 HOUR"`.
                return match relative(&text) {
                    Some(Ok(relative)) => Ok(relative),
                    Some(Err(message)) => Err(Error { position, message }),
                    None => Ok(Literal::Text(text)),
                };
            }
            Some(Token::Number(n)) => Literal::Number(n),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("true") => Literal::Bool(true),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("false") => Literal::Bool(false),
            Some(Token::Word(w))
                if w.eq_ignore_ascii_case("NOW") || w.eq_ignore_ascii_case("TODAY") =>
            {
                // A bare relative date: take tokens up to the end of `± N unit`.
                let start = self.next;
                let mut end = start + 1;
                let mut text = w.clone();
                for expected in ["(", ")"] {
                    match self.tokens.get(end) {
                        Some((_, Token::LParen)) if expected == "(" => text.push('('),
                        Some((_, Token::RParen)) if expected == ")" => text.push(')'),
                        _ => {
                            self.next = end;
                            return self.error(&format!("`{expected}` in `{w}()`"));
                        }
                    }
                    end += 1;
                }
                // `NOW()-1 HOUR` lexes the sign into the number.
                if let Some((_, Token::Number(n))) = self.tokens.get(end)
                    && let Some(count) = n.strip_prefix('-')
                {
                    text.push_str(&format!(" - {count}"));
                    end += 1;
                    match self.tokens.get(end) {
                        Some((_, Token::Word(u))) => text.push_str(&format!(" {u}")),
                        _ => {
                            self.next = end;
                            return self.error("a unit, as in `NOW() - 2 HOURS`");
                        }
                    }
                    end += 1;
                } else if let Some((_, Token::Symbol(sign @ ("+" | "-")))) = self.tokens.get(end) {
                    text.push_str(&format!(" {sign}"));
                    for _ in 0..2 {
                        end += 1;
                        match self.tokens.get(end) {
                            Some((_, Token::Number(n))) => text.push_str(&format!(" {n}")),
                            Some((_, Token::Word(u))) => text.push_str(&format!(" {u}")),
                            _ => {
                                self.next = end;
                                return self.error("a number and a unit, as in `NOW() - 2 HOURS`");
                            }
                        }
                    }
                    end += 1;
                }
                self.next = end;
                return match relative(&text) {
                    Some(Ok(relative)) => Ok(relative),
                    Some(Err(message)) => Err(Error { position, message }),
                    None => Err(Error {
                        position,
                        message: format!("`{text}` is not a relative date"),
                    }),
                };
            }
            _ => return self.error("a value (a quoted string, a number, true, false or NOW())"),
        };
        self.next += 1;
        Ok(literal)
    }
}

const OPERATORS: &str =
    "an operator (=, !=, <, <=, >, >=, IN, LIKE, CONTAINS, STARTSWITH, ENDSWITH, IS NULL)";

/// `NOW()`, `TODAY()`, optionally `± N unit`: `None` when `text` is not one at all.
fn relative(text: &str) -> Option<Result<Literal, String>> {
    let compact: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let upper = compact.to_ascii_uppercase();
    let (today, rest) = if let Some(rest) = upper.strip_prefix("NOW()") {
        (false, rest)
    } else if let Some(rest) = upper.strip_prefix("TODAY()") {
        (true, rest)
    } else {
        return None;
    };
    let rest = rest.trim();
    if rest.is_empty() {
        return Some(Ok(Literal::Relative {
            today,
            months: 0,
            seconds: 0,
        }));
    }
    let parse = || -> Result<Literal, String> {
        let (sign, rest) = match rest.chars().next() {
            Some('+') => (1, &rest[1..]),
            Some('-') => (-1, &rest[1..]),
            _ => return Err(format!("`{text}`: expected `+` or `-` after the `()`")),
        };
        let mut words = rest.split_whitespace();
        let (Some(count), Some(unit), None) = (words.next(), words.next(), words.next()) else {
            return Err(format!(
                "`{text}`: expected a number and a unit, as in `NOW() - 2 HOURS`"
            ));
        };
        let count: i64 = count
            .parse()
            .map_err(|_| format!("`{text}`: `{count}` is not a whole number"))?;
        let unit_name = unit.strip_suffix('S').unwrap_or(unit);
        let too_far = || format!("`{text}` is too far away");
        // Months and years are calendar ones: `NOW() - 1 MONTH` on 31 March is the last
        // day of February.
        if let Some(per) = match unit_name {
            "MONTH" => Some(1),
            "YEAR" => Some(12),
            _ => None,
        } {
            let months = count
                .checked_mul(per * sign)
                .and_then(|m| i32::try_from(m).ok())
                .filter(|m| m.unsigned_abs() <= MAX_MONTHS)
                .ok_or_else(too_far)?;
            return Ok(Literal::Relative {
                today,
                months,
                seconds: 0,
            });
        }
        let Some((_, size)) = UNITS.iter().find(|(u, _)| *u == unit_name) else {
            return Err(format!(
                "`{text}`: `{unit}` is not a unit (SECONDS, MINUTES, HOURS, DAYS, WEEKS, \
                 MONTHS or YEARS)"
            ));
        };
        let seconds = count
            .checked_mul(*size)
            .and_then(|s| s.checked_mul(sign))
            .ok_or_else(too_far)?;
        Ok(Literal::Relative {
            today,
            months: 0,
            seconds,
        })
    };
    Some(parse())
}

/// Parse `text` into an [`Expr`]; an empty query is `None` (everything).
pub fn parse(text: &str) -> Result<Option<Expr>, Error> {
    let tokens = lex(text)?;
    if tokens.is_empty() {
        return Ok(None);
    }
    let mut parser = Parser {
        tokens,
        next: 0,
        end: text.chars().count() + 1,
        depth: 0,
        conditions: 0,
        values: 0,
    };
    let expr = parser.or()?;
    if parser.next < parser.tokens.len() {
        return parser.error("AND, OR or the end of the query");
    }
    Ok(Some(expr))
}

/// The type of a field, as `OPTIONS …/tql` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Type {
    /// A whole number.
    Integer,
    /// Text.
    String,
    /// A point in time (compared as milliseconds since the epoch, UTC).
    Date,
    /// One of a set of words, compared without regard to case.
    Enum(&'static [&'static str]),
}

impl Type {
    /// The name ThreatConnect gives the type.
    pub fn name(self) -> &'static str {
        match self {
            Type::Integer => "Integer",
            Type::String => "String",
            Type::Date => "Date",
            Type::Enum(_) => "Enum",
        }
    }

    /// `a` or `an`, before the type's name.
    fn article(self) -> &'static str {
        if matches!(self, Type::Integer) {
            "an"
        } else {
            "a"
        }
    }
}

/// A field a query may name over one kind of record. `F` says which of the record's
/// fields it is: a store maps it to where it keeps that field, so that the query
/// language names no table or column.
#[derive(Debug, Clone, Copy)]
pub struct Field<F> {
    /// Its name in queries (matched without regard to case).
    pub keyword: &'static str,
    /// The record's field it reads.
    pub id: F,
    /// Its type.
    pub kind: Type,
    /// What it is.
    pub description: &'static str,
}

/// The fields of one kind of record.
pub type Schema<F> = &'static [Field<F>];

/// A value a checked condition compares a field with, of the field's type.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// An integer.
    Integer(i64),
    /// A real number (an integer field compared with `1.5`).
    Real(f64),
    /// Text, compared exactly.
    Text(String),
    /// One of an enum field's words, as the schema spells it; compared without regard to
    /// case.
    Word(&'static str),
    /// A point in time, in milliseconds since the epoch (UTC).
    Time(i64),
}

/// An ordering comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// A text match, compared without regard to ASCII case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// A `LIKE` pattern as written: `%` any text, `_` any one character, `\` before
    /// either (or itself) that character as it is.
    Like(String),
    /// The text appears in the field.
    Contains(String),
    /// The field starts with the text.
    StartsWith(String),
    /// The field ends with the text.
    EndsWith(String),
}

/// A query checked against a schema: every field is one of the schema's, every value of
/// its field's type, `NOW()` resolved. It says nothing of how a store finds the records:
/// each store renders it in its own dialect.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition<F> {
    /// Both hold.
    And(Box<Condition<F>>, Box<Condition<F>>),
    /// Either holds.
    Or(Box<Condition<F>>, Box<Condition<F>>),
    /// It does not hold; a condition on a missing value (which holds neither way) does
    /// not hold, so its negation does.
    Not(Box<Condition<F>>),
    /// `field op value`.
    Compare {
        /// The field.
        field: F,
        /// The comparison.
        op: Comparison,
        /// The value.
        value: Value,
    },
    /// `field [NOT] IN (values)`.
    In {
        /// The field.
        field: F,
        /// The values, at least one.
        values: Vec<Value>,
        /// `NOT IN`.
        negated: bool,
    },
    /// `field IS [NOT] NULL`.
    IsNull {
        /// The field.
        field: F,
        /// `IS NOT NULL`.
        negated: bool,
    },
    /// `field [NOT] LIKE`, `CONTAINS`, `STARTSWITH`, `ENDSWITH` (text fields only).
    Match {
        /// The field.
        field: F,
        /// What it must match.
        pattern: Pattern,
        /// `NOT …`.
        negated: bool,
    },
}

/// Check `expr` against `schema`, resolving `NOW()` to `now`. Errors name the field or
/// value that does not fit (their position is that of the whole query: 1).
pub fn check<F: Copy>(
    expr: &Expr,
    schema: Schema<F>,
    now: DateTime<Utc>,
) -> Result<Condition<F>, Error> {
    let both = |a: &Expr, b: &Expr| -> Result<_, Error> {
        Ok((
            Box::new(check(a, schema, now)?),
            Box::new(check(b, schema, now)?),
        ))
    };
    Ok(match expr {
        Expr::And(a, b) => {
            let (a, b) = both(a, b)?;
            Condition::And(a, b)
        }
        Expr::Or(a, b) => {
            let (a, b) = both(a, b)?;
            Condition::Or(a, b)
        }
        Expr::Not(e) => Condition::Not(Box::new(check(e, schema, now)?)),
        Expr::IsNull { field, negated } => Condition::IsNull {
            field: field_of(schema, field)?.id,
            negated: *negated,
        },
        Expr::In {
            field,
            values,
            negated,
        } => {
            let field = field_of(schema, field)?;
            Condition::In {
                field: field.id,
                values: values
                    .iter()
                    .map(|value| value_of(&field, value, now))
                    .collect::<Result<_, _>>()?,
                negated: *negated,
            }
        }
        Expr::Compare { field, op, value } => {
            let field = field_of(schema, field)?;
            let (pattern, negated) = match op.kind() {
                Ok(comparison) => {
                    return Ok(Condition::Compare {
                        field: field.id,
                        op: comparison,
                        value: value_of(&field, value, now)?,
                    });
                }
                Err(text_match) => text_match,
            };
            if !matches!(field.kind, Type::String | Type::Enum(_)) {
                return Err(semantic(format!(
                    "`{}` works on text; `{}` is {} {}",
                    op.text(),
                    field.keyword,
                    field.kind.article(),
                    field.kind.name()
                )));
            }
            let Literal::Text(text) = value else {
                return Err(semantic(format!(
                    "`{}` takes a quoted string, not {value}",
                    op.text()
                )));
            };
            Condition::Match {
                field: field.id,
                pattern: pattern(text.clone()),
                negated,
            }
        }
    })
}

/// Parse and check `text`; an empty query is `None`: it matches everything.
pub fn condition<F: Copy>(
    text: &str,
    schema: Schema<F>,
    now: DateTime<Utc>,
) -> Result<Option<Condition<F>>, Error> {
    parse(text)?
        .map(|expr| check(&expr, schema, now))
        .transpose()
}

fn field_of<F: Copy>(schema: Schema<F>, name: &str) -> Result<Field<F>, Error> {
    schema
        .iter()
        .find(|f| f.keyword.eq_ignore_ascii_case(name))
        .copied()
        .ok_or_else(|| {
            let known: Vec<&str> = schema.iter().map(|f| f.keyword).collect();
            semantic(format!(
                "there is no field `{name}`; the fields are {}",
                known.join(", ")
            ))
        })
}

fn semantic(message: String) -> Error {
    Error {
        position: 1,
        message,
    }
}

/// `NOW()` (or midnight UTC today) plus `seconds`, in milliseconds since the epoch.
fn time_at(today: bool, months: i32, seconds: i64, now: DateTime<Utc>) -> i64 {
    let mut base = if today {
        now.date_naive()
            .and_hms_opt(0, 0, 0)
            .map_or(now, |midnight| midnight.and_utc())
    } else {
        now
    };
    let shift = chrono::Months::new(months.unsigned_abs());
    let shifted = if months < 0 {
        base.checked_sub_months(shift)
    } else {
        base.checked_add_months(shift)
    };
    if let Some(shifted) = shifted {
        base = shifted;
    }
    base.timestamp_millis()
        .saturating_add(seconds.saturating_mul(1000))
}

/// The value `literal` means for `field`.
fn value_of<F>(field: &Field<F>, literal: &Literal, now: DateTime<Utc>) -> Result<Value, Error> {
    let wrong = |expected: &str| {
        semantic(format!(
            "`{}` is {} {}, so {literal} does not fit: expected {expected}",
            field.keyword,
            field.kind.article(),
            field.kind.name(),
        ))
    };
    match (field.kind, literal) {
        (Type::Integer, Literal::Number(n)) => n
            .parse::<i64>()
            .map(Value::Integer)
            .or_else(|_| n.parse::<f64>().map(Value::Real))
            .map_err(|_| wrong("a number")),
        (Type::Integer, Literal::Text(t)) => t
            .trim()
            .parse::<i64>()
            .map(Value::Integer)
            .map_err(|_| wrong("a number")),
        (Type::Integer, _) => Err(wrong("a number")),
        (Type::String, Literal::Text(t) | Literal::Number(t)) => Ok(Value::Text(t.clone())),
        (Type::String, Literal::Bool(b)) => Ok(Value::Text(b.to_string())),
        (Type::String, Literal::Relative { .. }) => Err(wrong("a quoted string")),
        // A word the field never holds is a query that matches accordingly (nothing
        // for `=`, everything for `!=`), as ThreatConnect answers it, not an error.
        (Type::Enum(words), Literal::Text(t)) => Ok(words
            .iter()
            .find(|w| w.eq_ignore_ascii_case(t))
            .map_or_else(|| Value::Text(t.clone()), |word| Value::Word(word))),
        (Type::Enum(_), _) => Err(wrong("a quoted word")),
        (
            Type::Date,
            Literal::Relative {
                today,
                months,
                seconds,
            },
        ) => Ok(Value::Time(time_at(*today, *months, *seconds, now))),
        (Type::Date, Literal::Text(t)) => parse_date(t)
            .map(|d| Value::Time(d.timestamp_millis()))
            .ok_or_else(|| {
                wrong(
                    "a date (\"2024-04-04\", \"2024-04-04 21:39:42\", RFC 3339) or NOW() - N HOURS",
                )
            }),
        (Type::Date, _) => Err(wrong("a quoted date or NOW() - N HOURS")),
    }
}

/// `2023-12-31`, `2023-12-31 13:45:00`, `2023-12-31T13:45:00` (UTC) or RFC 3339.
pub fn parse_date(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(date) = DateTime::parse_from_rfc3339(text) {
        return Some(date.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(date) = NaiveDateTime::parse_from_str(text, format) {
            return Some(date.and_utc());
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
}

/// Whether `record` (a JSON object, such as an incoming event) satisfies `expr`, with
/// the meaning the same query has over stored rows: a field is a key, or a dotted path
/// of keys (`fields.src_ip`); a missing or null field satisfies nothing but `ISNULL`
/// (and `NOT` of anything); `=` and `IN` compare text exactly and `CONTAINS`,
/// `STARTSWITH`, `ENDSWITH` and `LIKE` ignore ASCII case; numbers compare as numbers
/// (a numeric string counts), dates as dates (`NOW() - 1 HOUR`, RFC 3339). A field
/// holding a list satisfies a comparison when one of its items does, and a negated one
/// (`!=`, `NOT IN`, `NOT CONTAINS`, …) when none of its items satisfies the positive.
pub fn matches(expr: &Expr, record: &serde_json::Value, now: DateTime<Utc>) -> bool {
    match expr {
        Expr::And(a, b) => matches(a, record, now) && matches(b, record, now),
        Expr::Or(a, b) => matches(a, record, now) || matches(b, record, now),
        Expr::Not(e) => !matches(e, record, now),
        Expr::IsNull { field, negated } => {
            let missing = lookup(record, field).is_none_or(serde_json::Value::is_null);
            missing != *negated
        }
        Expr::In {
            field,
            values,
            negated,
        } => {
            let positive = |item: &serde_json::Value| {
                values
                    .iter()
                    .any(|v| compare_one(item, Op::Eq, v, now) == Some(true))
            };
            holds(record, field, positive, *negated)
        }
        Expr::Compare { field, op, value } => {
            let (positive_op, negated) = match op {
                Op::Ne => (Op::Eq, true),
                Op::NotLike => (Op::Like, true),
                Op::NotContains => (Op::Contains, true),
                Op::NotStartsWith => (Op::StartsWith, true),
                Op::NotEndsWith => (Op::EndsWith, true),
                other => (*other, false),
            };
            let positive =
                |item: &serde_json::Value| compare_one(item, positive_op, value, now) == Some(true);
            holds(record, field, positive, negated)
        }
    }
}

/// Whether `field` of `record` satisfies `positive` (any item of a list), or, when
/// `negated`, is present and satisfies it nowhere.
fn holds(
    record: &serde_json::Value,
    field: &str,
    positive: impl Fn(&serde_json::Value) -> bool,
    negated: bool,
) -> bool {
    let Some(value) = lookup(record, field).filter(|v| !v.is_null()) else {
        return false;
    };
    let any = match value {
        serde_json::Value::Array(items) => items.iter().any(&positive),
        one => positive(one),
    };
    any != negated
}

/// The value at `field`: a key, or else a path of dotted keys.
fn lookup<'a>(record: &'a serde_json::Value, field: &str) -> Option<&'a serde_json::Value> {
    if let Some(value) = record.get(field) {
        return Some(value);
    }
    field.split('.').try_fold(record, |value, key| match value {
        serde_json::Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => value.get(key),
    })
}

/// `value op literal` for one (non-list) value; `None` when they do not compare.
fn compare_one(
    value: &serde_json::Value,
    op: Op,
    literal: &Literal,
    now: DateTime<Utc>,
) -> Option<bool> {
    use std::cmp::Ordering;
    let ordered = |ordering: Ordering| match op {
        Op::Eq => ordering == Ordering::Equal,
        Op::Lt => ordering == Ordering::Less,
        Op::Le => ordering != Ordering::Greater,
        Op::Gt => ordering == Ordering::Greater,
        Op::Ge => ordering != Ordering::Less,
        _ => false,
    };
    let text = match value {
        serde_json::Value::String(text) => Some(text.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    if op.is_text_match() {
        let (text, Literal::Text(pattern)) = (text?, literal) else {
            return None;
        };
        let (text, pattern) = (text.to_ascii_lowercase(), pattern.to_ascii_lowercase());
        return Some(match op {
            Op::Contains => text.contains(&pattern),
            Op::StartsWith => text.starts_with(&pattern),
            Op::EndsWith => text.ends_with(&pattern),
            _ => like(&text, &pattern),
        });
    }
    let number = |v: &serde_json::Value| match v {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match literal {
        Literal::Number(n) => {
            let (a, b) = (number(value)?, n.parse::<f64>().ok()?);
            Some(ordered(a.partial_cmp(&b)?))
        }
        Literal::Bool(b) => match (value, op) {
            (serde_json::Value::Bool(v), Op::Eq) => Some(v == b),
            _ => None,
        },
        Literal::Relative {
            today,
            months,
            seconds,
        } => {
            let at = time_at(*today, *months, *seconds, now);
            let when = parse_date(&text?)?.timestamp_millis();
            Some(ordered(when.cmp(&at)))
        }
        Literal::Text(literal_text) => {
            let text = text?;
            if let Some(when) = parse_date(&text)
                && let Some(at) = parse_date(literal_text)
            {
                return Some(ordered(when.cmp(&at)));
            }
            if matches!(value, serde_json::Value::Number(_))
                && let Some(b) = literal_text.trim().parse::<f64>().ok()
            {
                return Some(ordered(number(value)?.partial_cmp(&b)?));
            }
            Some(ordered(text.as_str().cmp(literal_text.as_str())))
        }
    }
}

/// Whether `text` matches [`Pattern::Like`] `pattern`: `%` any text, `_` any one
/// character, `\\` before either (or itself) that character as it is.
fn like(text: &str, pattern: &str) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum Part {
        Any,
        One,
        Char(char),
    }
    let mut parts = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        parts.push(match c {
            '%' => Part::Any,
            '_' => Part::One,
            '\\' => Part::Char(chars.next().unwrap_or('\\')),
            c => Part::Char(c),
        });
    }
    let text: Vec<char> = text.chars().collect();
    // Wildcard matching, backtracking to the last `%`.
    let (mut t, mut p) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match parts.get(p) {
            Some(Part::Any) => {
                star = Some((p, t));
                p += 1;
            }
            Some(Part::One) => {
                t += 1;
                p += 1;
            }
            Some(Part::Char(c)) if *c == text[t] => {
                t += 1;
                p += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    parts[p..].iter().all(|part| *part == Part::Any)
}

#[cfg(test)]
mod like_tests {
    use super::like;

    #[test]
    fn like_reads_wildcards_and_escapes_as_sqlite_does() {
        assert!(like("%xab", "%ab"));
        assert!(like("evil.example.com", "%.example._om"));
        assert!(like("50%", "50\\%"));
        assert!(!like("500", "50\\%"));
        assert!(like("a_b", "a\\_b"));
        assert!(!like("axb", "a\\_b"));
        assert!(!like("abc", "ab"));
        assert!(like("", "%"));
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;

    /// The fields of the tests' schema.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum F {
        Id,
        Xid,
        Status,
        Completed,
    }

    const SCHEMA: Schema<F> = &[
        Field {
            keyword: "id",
            id: F::Id,
            kind: Type::Integer,
            description: "",
        },
        Field {
            keyword: "playbookXid",
            id: F::Xid,
            kind: Type::String,
            description: "",
        },
        Field {
            keyword: "status",
            id: F::Status,
            kind: Type::Enum(&["Completed", "Failed", "Partially Failed"]),
            description: "",
        },
        Field {
            keyword: "completedTime",
            id: F::Completed,
            kind: Type::Date,
            description: "",
        },
    ];

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 4, 4, 21, 39, 42).unwrap()
    }

    fn checked(text: &str) -> Condition<F> {
        condition(text, SCHEMA, now()).unwrap().unwrap()
    }

    fn error(text: &str) -> String {
        condition(text, SCHEMA, now()).unwrap_err().to_string()
    }

    fn compare(field: F, op: Comparison, value: Value) -> Condition<F> {
        Condition::Compare { field, op, value }
    }

    #[test]
    fn the_seed_queries_check() {
        let hour_ago = now().timestamp_millis() - 3_600_000;
        assert_eq!(
            checked(r#"completedTime > "NOW() - 1 HOUR""#),
            compare(F::Completed, Comparison::Gt, Value::Time(hour_ago))
        );
        assert_eq!(
            checked(r#"playbookXid = "GiTVUWaN""#),
            compare(F::Xid, Comparison::Eq, Value::Text("GiTVUWaN".to_owned()))
        );
        assert_eq!(
            checked("id = 12345"),
            compare(F::Id, Comparison::Eq, Value::Integer(12345))
        );
        assert_eq!(
            checked("id < 1.5"),
            compare(F::Id, Comparison::Lt, Value::Real(1.5))
        );
    }

    /// Issue 24: a word a field never holds was a 400; ThreatConnect answers it as a
    /// query (nothing is "NoSuchStatus", everything is not ''), and `IN` takes a bare
    /// value as well as a list.
    #[test]
    fn a_word_a_field_never_holds_is_a_query_and_in_takes_a_bare_value() {
        assert_eq!(
            checked(r#"status = "NoSuchStatus""#),
            compare(
                F::Status,
                Comparison::Eq,
                Value::Text("NoSuchStatus".to_owned())
            )
        );
        assert_eq!(
            checked("status NE ''"),
            compare(F::Status, Comparison::Ne, Value::Text(String::new()))
        );
        assert_eq!(
            checked(r#"status IN "failed""#),
            checked(r#"status IN ("Failed")"#)
        );
        assert_eq!(
            checked(r#"status NOT IN "failed""#),
            checked(r#"status NOT IN ("Failed")"#)
        );
    }

    #[test]
    fn keywords_and_fields_in_any_case_and_and_binds_tighter_than_or() {
        assert_eq!(
            checked(r#"PLAYBOOKXID == 'a' or status eq "failed" AND NOT completedtime isnull"#),
            Condition::Or(
                Box::new(compare(F::Xid, Comparison::Eq, Value::Text("a".to_owned()))),
                Box::new(Condition::And(
                    // The enum's word is canonicalised.
                    Box::new(compare(F::Status, Comparison::Eq, Value::Word("Failed"))),
                    Box::new(Condition::Not(Box::new(Condition::IsNull {
                        field: F::Completed,
                        negated: false
                    })))
                ))
            )
        );
    }

    #[test]
    fn relative_dates_bare_or_quoted_in_any_unit_spelling() {
        let at = |q: &str| match checked(q) {
            Condition::Compare {
                value: Value::Time(ms),
                ..
            } => ms,
            other => panic!("{other:?}"),
        };
        let now = now().timestamp_millis();
        assert_eq!(at("completedTime > NOW() - 24 hours"), now - 86_400_000);
        assert_eq!(
            at(r#"completedTime > "now() - 30 DAYS""#),
            now - 30 * 86_400_000
        );
        assert_eq!(at("completedTime < NOW() + 2 week"), now + 14 * 86_400_000);
        assert_eq!(at("completedTime >= NOW()"), now);
        assert_eq!(at("completedTime > NOW()-90 minutes"), now - 5_400_000);
        let midnight = Utc.with_ymd_and_hms(2024, 4, 4, 0, 0, 0).unwrap();
        assert_eq!(
            at(r#"completedTime >= "TODAY()""#),
            midnight.timestamp_millis()
        );
        // Months and years are calendar ones (issue 24): 4 April less a month is 4 March.
        assert_eq!(
            at("completedTime > NOW() - 1 MONTH"),
            Utc.with_ymd_and_hms(2024, 3, 4, 21, 39, 42)
                .unwrap()
                .timestamp_millis()
        );
        assert_eq!(
            at(r#"completedTime > "TODAY() - 2 years""#),
            Utc.with_ymd_and_hms(2022, 4, 4, 0, 0, 0)
                .unwrap()
                .timestamp_millis()
        );
        assert!(error("completedTime > NOW() - 1000000 YEARS").contains("too far away"));
        assert_eq!(
            at(r#"completedTime > "2023-12-31 13:45:00""#),
            Utc.with_ymd_and_hms(2023, 12, 31, 13, 45, 0)
                .unwrap()
                .timestamp_millis()
        );
        assert_eq!(
            at(r#"completedTime > "2023-12-31""#),
            Utc.with_ymd_and_hms(2023, 12, 31, 0, 0, 0)
                .unwrap()
                .timestamp_millis()
        );
    }

    #[test]
    fn text_operators_keep_the_text_as_written_and_in_lists_check_each_value() {
        assert_eq!(
            checked(r#"playbookXid CONTAINS "50%_off""#),
            Condition::Match {
                field: F::Xid,
                pattern: Pattern::Contains("50%_off".to_owned()),
                negated: false
            }
        );
        assert_eq!(
            checked(r#"playbookXid not startswith "x""#),
            Condition::Match {
                field: F::Xid,
                pattern: Pattern::StartsWith("x".to_owned()),
                negated: true
            }
        );
        assert_eq!(
            checked(r#"playbookXid LIKE "a%b""#),
            Condition::Match {
                field: F::Xid,
                pattern: Pattern::Like("a%b".to_owned()),
                negated: false
            }
        );
        assert_eq!(
            checked(r#"status NOT IN ("Completed", "failed")"#),
            Condition::In {
                field: F::Status,
                values: vec![Value::Word("Completed"), Value::Word("Failed")],
                negated: true
            }
        );
        assert_eq!(
            checked("completedTime IS NOT NULL"),
            Condition::IsNull {
                field: F::Completed,
                negated: true
            }
        );
    }

    #[test]
    fn errors_name_the_position_and_what_was_expected() {
        assert_eq!(
            error("status = "),
            "at position 10: expected a value (a quoted string, a number, true, false or NOW()), \
             found the end of the query"
        );
        assert_eq!(
            error(r#"status ~ "x""#),
            "at position 8: unexpected character `~`"
        );
        assert_eq!(
            error(r#"status BETWEEN "x""#),
            format!("at position 8: expected {OPERATORS}, found `BETWEEN`")
        );
        assert_eq!(
            error(r#"(status = "Failed""#),
            "at position 19: expected `)` or AND or OR, found the end of the query"
        );
        assert_eq!(
            error(r#"status = "Failed" id = 1"#),
            "at position 19: expected AND, OR or the end of the query, found `id`"
        );
        assert_eq!(
            error(r#"playbookXid = "open"#),
            "at position 15: the string opened here has no closing \""
        );
        assert_eq!(
            error("completedTime > NOW() - 3 fortnights"),
            "at position 17: `NOW() - 3 fortnights`: `FORTNIGHTS` is not a unit \
             (SECONDS, MINUTES, HOURS, DAYS, WEEKS, MONTHS or YEARS)"
        );
        assert_eq!(
            error(r#"colour = "red""#),
            "at position 1: there is no field `colour`; the fields are id, playbookXid, \
             status, completedTime"
        );
        assert_eq!(
            error(r#"id = "seven""#),
            "at position 1: `id` is an Integer, so \"seven\" does not fit: expected a number"
        );
        assert_eq!(
            error(r#"id CONTAINS "7""#),
            "at position 1: `CONTAINS` works on text; `id` is an Integer"
        );
        assert_eq!(
            error(r#"completedTime > "yesterday""#),
            "at position 1: `completedTime` is a Date, so \"yesterday\" does not fit: expected \
             a date (\"2024-04-04\", \"2024-04-04 21:39:42\", RFC 3339) or NOW() - N HOURS"
        );
    }

    #[test]
    fn hostile_queries_are_refused_not_obeyed() {
        let deep = format!("{}id = 1{}", "(".repeat(60_000), ")".repeat(60_000));
        assert_eq!(
            error(&deep),
            "at position 33: the query nests `NOT` and `(` deeper than 32 levels"
        );
        let nots = format!("{}id = 1", "NOT ".repeat(40));
        assert!(error(&nots).contains("deeper than 32 levels"));
        let many = vec!["id = 1"; 300].join(" OR ");
        assert!(error(&many).ends_with("the query has more than 256 conditions"));
        let list = format!("id IN ({})", vec!["1"; 1_001].join(", "));
        assert!(error(&list).contains("an `IN` list holds at most 1000 values"));
        let long = format!("playbookXid CONTAINS \"{}\"", "x".repeat(5_000));
        assert!(error(&long).ends_with("a string longer than 4096 characters"));
        assert!(
            error(r#"completedTime > "NOW() - -9223372036854775808 SECONDS""#)
                .ends_with("is too far away")
        );
    }

    #[test]
    fn a_query_holds_a_bounded_number_of_values_in_all() {
        let list = vec!["1"; MAX_IN_VALUES].join(", ");
        let lists = vec![format!("id IN ({list})"); MAX_VALUES / MAX_IN_VALUES + 1].join(" OR ");
        assert!(
            error(&lists).contains("at most 10000 values in all"),
            "{}",
            error(&lists)
        );
        let fits = vec![format!("id IN ({list})"); MAX_VALUES / MAX_IN_VALUES].join(" OR ");
        assert!(condition(&fits, SCHEMA, now()).is_ok());
    }

    #[test]
    fn an_empty_query_matches_everything() {
        assert_eq!(condition("   ", SCHEMA, now()), Ok(None));
    }

    fn literal() -> impl Strategy<Value = Literal> {
        prop_oneof![
            "[ -~]{0,12}"
                .prop_filter("not a relative date", |t| relative(t).is_none())
                .prop_map(Literal::Text),
            (-1_000_000i64..1_000_000).prop_map(|n| Literal::Number(n.to_string())),
            any::<bool>().prop_map(Literal::Bool),
            (any::<bool>(), -1000i64..1000, 0..UNITS.len()).prop_map(|(today, n, unit)| {
                Literal::Relative {
                    today,
                    months: 0,
                    seconds: n * UNITS[unit].1,
                }
            }),
            (any::<bool>(), -1000i32..1000).prop_map(|(today, months)| Literal::Relative {
                today,
                months,
                seconds: 0,
            }),
        ]
    }

    fn expr() -> impl Strategy<Value = Expr> {
        let field = "[a-zA-Z][a-zA-Z0-9_]{0,8}".prop_filter("not a keyword", |f| {
            ![
                "AND",
                "OR",
                "NOT",
                "IN",
                "IS",
                "NULL",
                "ISNULL",
                "LIKE",
                "CONTAINS",
                "STARTSWITH",
                "ENDSWITH",
                "TRUE",
                "FALSE",
                "NOW",
                "TODAY",
                "EQ",
                "NE",
                "LT",
                "GT",
                "LEQ",
                "GEQ",
                "LE",
                "GE",
                "EQUALS",
            ]
            .contains(&f.to_ascii_uppercase().as_str())
        });
        let op = prop_oneof![
            Just(Op::Eq),
            Just(Op::Ne),
            Just(Op::Lt),
            Just(Op::Le),
            Just(Op::Gt),
            Just(Op::Ge),
            Just(Op::Like),
            Just(Op::NotLike),
            Just(Op::Contains),
            Just(Op::NotContains),
            Just(Op::StartsWith),
            Just(Op::NotStartsWith),
            Just(Op::EndsWith),
            Just(Op::NotEndsWith),
        ];
        let leaf = prop_oneof![
            (field.clone(), op, literal()).prop_map(|(field, op, value)| Expr::Compare {
                field,
                op,
                value
            }),
            (
                field.clone(),
                prop::collection::vec(literal(), 1..4),
                any::<bool>()
            )
                .prop_map(|(field, values, negated)| Expr::In {
                    field,
                    values,
                    negated
                }),
            (field, any::<bool>()).prop_map(|(field, negated)| Expr::IsNull { field, negated }),
        ];
        leaf.prop_recursive(4, 24, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone())
                    .prop_map(|(a, b)| Expr::And(Box::new(a), Box::new(b))),
                (inner.clone(), inner.clone())
                    .prop_map(|(a, b)| Expr::Or(Box::new(a), Box::new(b))),
                inner.prop_map(|e| Expr::Not(Box::new(e))),
            ]
        })
    }

    proptest! {
        #[test]
        fn parsing_the_printed_query_gives_the_same_query(expr in expr()) {
            let text = expr.to_string();
            prop_assert_eq!(parse(&text).unwrap(), Some(expr), "{}", text);
        }

        #[test]
        fn no_text_panics_the_parser(text in "\\PC{0,40}") {
            let _ = parse(&text);
        }
    }
}
